"""The batch normaliser agrees with `to_e164` (libphonenumber) on a large random sample: valid numbers of
many regions and types written every usual way, near misses, random digits and odd text."""

import random

import phonenumbers
import pytest
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from nightshift.phones import _metadata_route, to_e164, to_e164_many

REGIONS = ["ML", "FR", "CD", "CI", "SN", "CM", "BF", "NE", "GN", "TG", "BJ", "MA", "DZ", "TN", "BE", "CH", "DE",
           "IT", "ES", "GB", "JE", "US", "CA", "CN", "RU", "KZ", "IN", "BR", "AR", "MX", "JP", "AU", "NG", "CG"]
TYPES = [PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE, PhoneNumberType.TOLL_FREE,
         PhoneNumberType.PREMIUM_RATE, PhoneNumberType.VOIP]
DEFAULT_REGIONS = ["ML", "FR", "CD", "CI", "US", "GB", "IT", "BR", "CN", "RU"]


def _variants(rng: random.Random, number: phonenumbers.PhoneNumber) -> list[str]:
    e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    national = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
    international = phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
    digits = e164[1:]
    spaced = " ".join(digits[i:i + 2] for i in range(0, len(digits), 2))
    return [e164, national, international, "00" + digits, "+" + spaced, digits, digits + ".0",
            national.replace(" ", "."), national.replace(" ", "-"), international.replace(" ", ""),
            f"+{number.country_code} (0){national.lstrip('0')}", national.replace(" ", "\u00a0")]


def _mutated(rng: random.Random, text: str) -> str:
    """The same text with one digit changed, dropped or doubled: near misses, some still valid."""
    positions = [i for i, c in enumerate(text) if c.isdigit()]
    if not positions:
        return text
    i = rng.choice(positions)
    return rng.choice([text[:i] + str(rng.randrange(10)) + text[i + 1:], text[:i] + text[i + 1:],
                       text[:i] + text[i] + text[i:]])


def _sample(seed: int = 20261202) -> list[str]:
    rng = random.Random(seed)
    texts: list[str] = []
    for region in REGIONS:
        for number_type in TYPES:
            example = phonenumbers.example_number_for_type(region, number_type)
            if example is None:
                continue
            for _ in range(12):
                variant = rng.choice(_variants(rng, example))
                texts += [variant, _mutated(rng, variant), _mutated(rng, _mutated(rng, variant))]
            texts += _variants(rng, example)
    for _ in range(1_500):
        length = rng.randrange(1, 19)
        digits = "".join(str(rng.randrange(10)) for _ in range(length))
        texts.append(rng.choice(["", "+", "00", "0"]) + digits)
    texts += ["+", "00", "0", "+0", "++33612345678", "+33 6 12", "06 12 34 56 78 ext. 12", "tel: 0612345678",
              "0612345678 / 0712345678", "(+223) 70 12 34 56", "+223-70-12-34-56", "1-800-FLOWERS",
              "+1 (650) 253-0000", "+44 20 7031 3000", "+7 701 123 4567", "٠٦١٢٣٤٥٦٧٨", "+881 6 1234 5678"]
    return texts


@pytest.mark.parametrize("region", DEFAULT_REGIONS)
def test_batch_normaliser_agrees_with_libphonenumber(region):
    texts = _sample()
    assert len(texts) > 5_000
    expected = [to_e164(text, region) for text in texts]
    assert sum(e is not None for e in expected) > 500 and sum(e is None for e in expected) > 500
    actual = to_e164_many(texts, region)
    disagreements = [(text, want, got) for text, want, got in zip(texts, expected, actual, strict=True) if want != got]
    assert disagreements == []
    # The metadata route itself decides most valid numbers; the rest went through libphonenumber.
    decided = sum(e164 is not None for e164 in _metadata_route(texts, region))
    assert decided > 0.5 * sum(e is not None for e in expected)
