"""The digit automaton reads libphonenumber's metadata patterns as Python's regular expressions do: for
every region's number descriptions and international prefix, on its example numbers, near misses of
them and random digits."""

import random
import re

import numpy as np
import phonenumbers
import pytest
from phonenumbers import PhoneMetadata

from nightshift.phone_patterns import END, DigitAutomaton, Unsupported
from nightshift.phones import _NUMBER_TYPES


def _matrix(numbers: list[str]) -> np.ndarray:
    width = max(map(len, numbers))
    digits = np.full((len(numbers), width), END, dtype=np.uint8)
    for row, number in enumerate(numbers):
        digits[row, :len(number)] = [int(d) for d in number]
    return digits


def _numbers(rng: random.Random, metadata) -> list[str]:
    examples = [desc.example_number for desc in (getattr(metadata, name) for name in ("general_desc", *_NUMBER_TYPES))
                if desc is not None and desc.example_number]
    near = []
    for example in examples:
        for _ in range(20):
            i = rng.randrange(len(example))
            near += [example[:i] + str(rng.randrange(10)) + example[i + 1:], example[:i] + example[i + 1:],
                     example[:i] + example[i] + example[i:], example + str(rng.randrange(10))]
    randoms = ["".join(str(rng.randrange(10)) for _ in range(rng.randrange(0, 18))) for _ in range(300)]
    return examples + near + randoms + ["", "0", "00", "011", "0033"]


def test_every_region_s_patterns_match_as_python_s_regular_expressions():
    rng = random.Random(20261204)
    checked = matched = 0
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        metadata = PhoneMetadata.metadata_for_region(region)
        descriptions = [getattr(metadata, name) for name in ("general_desc", *_NUMBER_TYPES)]
        patterns = [desc.national_number_pattern for desc in descriptions
                    if desc is not None and desc.national_number_pattern]
        numbers = _numbers(rng, metadata)
        digits = _matrix(numbers)
        bits = DigitAutomaton.of(patterns).matched(digits)
        for bit, pattern in enumerate(patterns):
            expected = np.array([re.fullmatch(pattern, number) is not None for number in numbers])
            assert ((bits >> np.uint64(bit)) & np.uint64(1)).astype(bool).tolist() == expected.tolist(), \
                (region, pattern)
            matched += int(expected.sum())
        if metadata.international_prefix:
            expected = [re.match(metadata.international_prefix, number) is not None for number in numbers]
            assert DigitAutomaton.of([metadata.international_prefix]).matches_a_start(digits).tolist() == expected, \
                (region, metadata.international_prefix)
        checked += 1
    assert checked == len(phonenumbers.SUPPORTED_REGIONS) > 240
    assert matched > 10_000  # the samples hit the patterns, not only their misses


@pytest.mark.parametrize("pattern", ["^1", "1$", "1+", "1*", "(?=1)1", "(?!2)1", "a", "(?i:1)", r"\w"])
def test_a_pattern_with_more_than_digits_classes_groups_and_bounded_repeats_is_refused(pattern):
    with pytest.raises(Unsupported):
        DigitAutomaton.of([pattern])


def test_more_patterns_than_the_bits_of_accepts_are_refused():
    DigitAutomaton.of(["1"] * 64)
    with pytest.raises(Unsupported):
        DigitAutomaton.of(["1"] * 65)
