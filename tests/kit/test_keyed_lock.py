"""KeyedLock: turns per key, other keys never wait, nothing kept once a key is free."""

from __future__ import annotations

import asyncio

import pytest

from payment_service.kit.keyed_lock import KeyBusy, KeyedLock


async def test_holders_of_one_key_take_turns_in_arrival_order_and_other_keys_do_not_wait() -> None:
    turns = KeyedLock(holders=2)
    inside: list[str] = []
    most = 0
    order: list[int] = []
    gate = asyncio.Event()

    async def user(key: str, n: int) -> None:
        nonlocal most
        async with turns.hold(key):
            inside.append(key)
            most = max(most, inside.count("hot"))
            if key == "hot":
                order.append(n)
                await gate.wait()
            inside.remove(key)

    hot = [asyncio.create_task(user("hot", n)) for n in range(5)]
    await asyncio.sleep(0.01)
    assert inside.count("hot") == 2  # two hold it, three wait
    await asyncio.wait_for(user("other", 0), 1)  # another key goes through at once
    gate.set()
    await asyncio.wait_for(asyncio.gather(*hot), 1)
    assert most == 2
    assert order == [0, 1, 2, 3, 4]
    assert len(turns) == 0  # no entry left behind


async def test_an_entry_survives_while_someone_waits_and_goes_with_an_error_or_a_cancel() -> None:
    turns = KeyedLock()
    release = asyncio.Event()

    async def holder() -> None:
        async with turns.hold("k"):
            await release.wait()

    async def failing() -> None:
        async with turns.hold("k"):
            raise RuntimeError("boom")

    first = asyncio.create_task(holder())
    await asyncio.sleep(0)
    waiting = asyncio.create_task(holder())
    cancelled = asyncio.create_task(holder())
    await asyncio.sleep(0.01)
    cancelled.cancel()  # gave up while waiting
    await asyncio.sleep(0.01)
    assert len(turns) == 1
    release.set()
    await asyncio.wait_for(asyncio.gather(first, waiting), 1)
    assert cancelled.cancelled()
    assert len(turns) == 0
    with pytest.raises(RuntimeError):
        await failing()
    assert len(turns) == 0


async def test_a_wait_past_its_timeout_gives_up_and_a_holder_cancelled_inside_frees_its_place() -> None:
    turns = KeyedLock()
    inside = asyncio.Event()

    async def holder() -> None:
        async with turns.hold("k"):
            inside.set()
            await asyncio.sleep(30)

    held = asyncio.create_task(holder())
    await inside.wait()
    with pytest.raises(KeyBusy):
        async with turns.hold("k", timeout=0.05):
            raise AssertionError("never inside")
    held.cancel()  # cancelled while holding
    with pytest.raises(asyncio.CancelledError):
        await held
    async with turns.hold("k", timeout=0.5):  # its place is free again
        assert len(turns) == 1
    assert len(turns) == 0


async def test_the_first_user_of_a_key_fixes_its_places() -> None:
    turns = KeyedLock()
    gate = asyncio.Event()
    inside = 0

    async def user() -> None:
        nonlocal inside
        async with turns.hold("k", holders=3):
            inside += 1
            await gate.wait()

    tasks = [asyncio.create_task(user()) for _ in range(5)]
    await asyncio.sleep(0.01)
    assert inside == 3
    gate.set()
    await asyncio.gather(*tasks)
