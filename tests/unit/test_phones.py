"""The one phone normaliser (imports and the outbox): the numbers the old normalisers got wrong."""

import pytest

from nightshift.phones import region_of, to_e164


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
