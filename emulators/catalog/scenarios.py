"""The catalog the emulator starts with: one item per checkout rule worth testing.

| id | what it exercises |
|---|---|
| ``game-1001`` | a released game, 499.00 RUB (also KZ/BY prices), developer ``dev-aurora`` 70 % |
| ``dlc-1001-1`` | a DLC of ``game-1001``, 199.00 RUB |
| ``game-2002`` | on sale: list 1 999.00, now 1 299.00 RUB (35 %), developer ``dev-harbor`` 75 % |
| ``game-3003`` | a pre-order (release 2027-03-01), 2 499.00 RUB, developer ``dev-sky`` 80 % |
| ``game-4004`` | delisted (``purchasable: false``) |
| ``game-5005`` | free to play (0.00 RUB) |
| ``game-6006`` | not sold in RU (KZ price only) |
| ``game-7007`` | not released yet and not a pre-order |
| ``game-8008`` | 100.01 RUB with an odd share (70.5 %): rounding in every part of the split |
"""

from __future__ import annotations

from typing import Any


def _price(currency: str, amount_minor: int, list_minor: int | None = None, discount: int = 0) -> dict[str, Any]:
    return {
        "currency": currency,
        "amount_minor": amount_minor,
        "list_minor": list_minor if list_minor is not None else amount_minor,
        "discount_percent": discount,
    }


def default_items() -> dict[str, dict[str, Any]]:
    """Item id → stored item (prices per region in minor units)."""
    items: list[dict[str, Any]] = [
        {
            "id": "game-1001",
            "kind": "game",
            "title": "Северное сияние",
            "developer_id": "dev-aurora",
            "revenue_share_percent": "70",
            "release_date": "2025-05-01",
            "prices": {"RU": _price("RUB", 49_900), "KZ": _price("KZT", 299_000), "BY": _price("BYN", 1_700)},
        },
        {
            "id": "dlc-1001-1",
            "kind": "dlc",
            "title": "Северное сияние: Ледяной берег",
            "base_game_id": "game-1001",
            "developer_id": "dev-aurora",
            "revenue_share_percent": "70",
            "release_date": "2025-09-01",
            "prices": {"RU": _price("RUB", 19_900)},
        },
        {
            "id": "game-2002",
            "kind": "game",
            "title": "Железная гавань",
            "developer_id": "dev-harbor",
            "revenue_share_percent": "75",
            "release_date": "2024-11-15",
            "prices": {"RU": _price("RUB", 129_900, 199_900, 35)},
        },
        {
            "id": "game-3003",
            "kind": "game",
            "title": "Хроники небесной кузни",
            "developer_id": "dev-sky",
            "revenue_share_percent": "80",
            "release_date": "2027-03-01",
            "preorder": True,
            "prices": {"RU": _price("RUB", 249_900)},
        },
        {
            "id": "game-4004",
            "kind": "game",
            "title": "Старые сказки",
            "developer_id": "dev-old",
            "revenue_share_percent": "70",
            "release_date": "2012-04-01",
            "purchasable": False,
            "prices": {"RU": _price("RUB", 9_900)},
        },
        {
            "id": "game-5005",
            "kind": "game",
            "title": "Свободная арена",
            "developer_id": "dev-arena",
            "revenue_share_percent": "70",
            "release_date": "2023-01-01",
            "prices": {"RU": _price("RUB", 0)},
        },
        {
            "id": "game-6006",
            "kind": "game",
            "title": "Степной путь",
            "developer_id": "dev-steppe",
            "revenue_share_percent": "70",
            "release_date": "2025-01-01",
            "prices": {"KZ": _price("KZT", 150_000)},
        },
        {
            "id": "game-7007",
            "kind": "game",
            "title": "Квест будущего",
            "developer_id": "dev-future",
            "revenue_share_percent": "70",
            "release_date": "2027-06-01",
            "prices": {"RU": _price("RUB", 99_900)},
        },
        {
            "id": "game-8008",
            "kind": "game",
            "title": "Копеечная головоломка",
            "developer_id": "dev-puzzle",
            "revenue_share_percent": "70.5",
            "release_date": "2025-02-02",
            "prices": {"RU": _price("RUB", 10_001)},
        },
    ]
    return {item["id"]: item for item in items}
