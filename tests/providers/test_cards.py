from __future__ import annotations

import pytest

from payment_service.providers.cards import CardScheme, luhn_valid, scheme_from_bin, scheme_from_name, split_masked_pan
from payment_service.providers.ports import MaskedCard


class TestSchemeFromBin:
    @pytest.mark.parametrize(
        ("bin_", "scheme"),
        [
            ("220000", CardScheme.mir),
            ("220220", CardScheme.mir),
            ("220499", CardScheme.mir),
            ("220500", CardScheme.unknown),
            ("222100", CardScheme.mastercard),
            ("272099", CardScheme.mastercard),
            ("272100", CardScheme.unknown),
            ("510000", CardScheme.mastercard),
            ("555555", CardScheme.mastercard),
            ("411111", CardScheme.visa),
            ("479312", CardScheme.visa),
            ("340000", CardScheme.amex),
            ("370000", CardScheme.amex),
            ("352800", CardScheme.jcb),
            ("358999", CardScheme.jcb),
            ("620000", CardScheme.unionpay),
            ("675964", CardScheme.maestro),
            ("500000", CardScheme.maestro),
            ("600000", CardScheme.maestro),
            ("9", CardScheme.unknown),
            ("", CardScheme.unknown),
        ],
    )
    def test_known_ranges(self, bin_: str, scheme: CardScheme) -> None:
        assert scheme_from_bin(bin_) is scheme

    def test_22xx_outside_mir_and_mastercard_is_not_mir(self) -> None:
        assert scheme_from_bin("2210") is CardScheme.unknown

    def test_separators_are_ignored(self) -> None:
        assert scheme_from_bin("2200 70") is CardScheme.mir


class TestSchemeFromName:
    @pytest.mark.parametrize(
        ("name", "scheme"), [("MasterCard", CardScheme.mastercard), ("MIR", CardScheme.mir), ("Visa", CardScheme.visa)]
    )
    def test_provider_brand_names(self, name: str, scheme: CardScheme) -> None:
        assert scheme_from_name(name) is scheme

    def test_unknown_name_falls_back_to_bin(self) -> None:
        assert scheme_from_name("Unknown", "220070") is CardScheme.mir


def test_luhn() -> None:
    assert luhn_valid("4111 1111 1111 1111")
    assert luhn_valid("2200770239097761")
    assert not luhn_valid("4111111111111112")
    assert not luhn_valid("4111")


def test_split_masked_pan() -> None:
    assert split_masked_pan("430000******0777") == ("430000", "0777")
    assert split_masked_pan("220000**0053") == ("220000", "0053")
    assert split_masked_pan("+7 916 ***-**-67") == (None, None)


def test_masked_card_rejects_anything_but_first6_and_last4() -> None:
    with pytest.raises(ValueError, match="last4"):
        MaskedCard(last4="4111111111111111", scheme=CardScheme.visa)
    with pytest.raises(ValueError, match="first6"):
        MaskedCard(last4="1111", first6="4111111111111111", scheme=CardScheme.visa)
