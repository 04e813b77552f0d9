"""The one backoff function: old systems' defaults, jitter, Retry-After, Meta's pair rate and deferral."""

import random
import statistics

import pytest

from nightshift.notification_settings import NotificationSettings
from nightshift.notifications.backoff import retry_delay
from nightshift.notifications.classify import META_CODES

SETTINGS = NotificationSettings()
DEFAULT, SHORT = SETTINGS.backoff["default"], SETTINGS.backoff["short"]


@pytest.mark.parametrize(("attempt", "nominal"), [(1, 1800), (2, 3600), (3, 7200), (4, 14400), (6, 57600),
                                                   (7, 86400), (10, 86400)])
def test_default_policy_is_30_min_doubling_capped_at_24_h_within_20_percent(attempt, nominal):
    rng = random.Random(attempt)
    delays = [retry_delay(DEFAULT, attempt, rng=rng) for _ in range(500)]
    assert nominal * 0.8 <= min(delays) and max(delays) <= nominal * 1.2
    assert statistics.pstdev(delays) > nominal * 0.05  # spread, not lockstep
    assert DEFAULT.max_attempts == 10


def test_short_policy_is_5_min_doubling_capped_at_32_times_base_with_full_jitter():
    rng = random.Random(7)
    assert SHORT.max_attempts == 3
    for attempt, nominal in [(1, 300), (2, 600), (3, 1200), (7, 9600), (9, 9600)]:
        delays = [retry_delay(SHORT, attempt, rng=rng) for _ in range(500)]
        assert 0 <= min(delays) < nominal * 0.1 and nominal * 0.9 < max(delays) <= nominal


def test_never_earlier_than_retry_after():
    rng = random.Random(1)
    assert all(retry_delay(SHORT, 1, retry_after=7200, rng=rng) >= 7200 for _ in range(200))


@pytest.mark.parametrize(("attempt", "wait"), [(1, 1), (2, 4), (3, 16), (4, 64), (5, 256)])
def test_meta_pair_rate_waits_4_to_the_n_seconds(attempt, wait):
    assert retry_delay(DEFAULT, attempt, rule=META_CODES["131056"]) == wait


def test_meta_deferred_waits_at_least_a_day():
    assert retry_delay(SHORT, 1, rule=META_CODES["131049"]) >= 24 * 3600
