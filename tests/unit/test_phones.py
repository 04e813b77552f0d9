"""The one phone normaliser (imports and the outbox): the numbers the old normalisers got wrong."""

import pytest

from nightshift.phones import refusal_reason, region_of, to_e164


@pytest.mark.parametrize(("raw", "region", "expected"), [
    ("70 12 34 56", "ML", "+22370123456"),
    ("+223 70 12 34 56", "FR", "+22370123456"),
    ("0022376543210", "ML", "+22376543210"),
    ("0612345678", "ML", None),  # a French national number is not Malian
    ("0612345678", "FR", "+33612345678"),
    ("13812345678", "ML", None),  # nor a Chinese one
    ("13812345678", "CN", "+8613812345678"),
    ("22370123456.0", "ML", "+22370123456"),
    ("pas de numéro", "ML", None),
])
def test_to_e164(raw, region, expected):
    assert to_e164(raw, region) == expected


def test_region_of():
    assert region_of("+22370123456") == "ML"
    assert region_of("+8613812345678") == "CN"


@pytest.mark.parametrize(("raw", "reason"), [
    ("abc", "not_a_number"),  # no digits
    ("pas de numéro", "not_a_number"),
    ("70 12 AB 56", "not_a_number"),  # letters among the digits
    ("=1+2", "not_a_number"),  # a formula, a + that is not in front
    ("12 34", "not_a_number"),  # far too short
    ("1234567890123456789", "not_a_number"),  # far too long
    ("0612345678", "national"),  # a plausible number, not Malian: maybe foreign without its country code
    ("(0)6 12 34 56 78", "national"),
    ("33612345678.0", "national"),  # a whole number through an Excel float
    ("+33 6 12 34 56", "international"),  # has its country code, the rest does not fit it
    ("0033 6 12 34 56", "international"),
])
def test_refusal_reason_tells_text_that_is_no_phone_number_from_a_number_of_another_region(raw, reason):
    assert to_e164(raw, "ML") is None
    assert refusal_reason(raw) == reason
