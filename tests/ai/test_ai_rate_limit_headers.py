"""The provider's x-ratelimit-* headers (remaining requests/tokens, reset times as "6m0s", "1s", "20ms"): when a
budget is used up, no process sharing the database limiter sends before its reset. Against the local
OpenAI-compatible server, on SQLite and PostgreSQL."""

import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from nightshift.ai.client import duration_seconds, rate_limit_wait_seconds
from nightshift.ai.limiter import book_start, pause_until
from nightshift.db.engine import create_engine, utc
from nightshift.db.schema import ai_rate_limits
from tests.ai.conftest import client_of
from tests.ai.fake_openai import error, ok
from tests.ai.test_ai_client import chat
from tests.ai.test_ai_generation import add_business, generator, run_import

USED_UP = {"x-ratelimit-limit-requests": "500", "x-ratelimit-remaining-requests": "0",
           "x-ratelimit-reset-requests": "1.5s", "x-ratelimit-remaining-tokens": "29000",
           "x-ratelimit-reset-tokens": "20ms"}


@pytest.mark.parametrize(("text", "seconds"), [("6m0s", 360), ("1s", 1), ("20ms", 0.02), ("1h2m3.5s", 3723.5),
                                               ("2m59.56s", 179.56), ("1.5", 1.5), ("0s", 0)])
def test_reset_times_are_read_as_go_durations_or_seconds(text, seconds):
    assert duration_seconds(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "soon", "6 minutes", "1x"])
def test_an_unreadable_reset_time_is_ignored(text):
    assert duration_seconds(text) is None


def test_only_a_used_up_budget_makes_a_wait():
    assert rate_limit_wait_seconds(USED_UP) == 1.5
    tokens_out = {"x-ratelimit-remaining-requests": "3", "x-ratelimit-reset-requests": "1s",
                  "x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "6m0s"}
    assert rate_limit_wait_seconds(tokens_out) == 360
    both = {**tokens_out, "x-ratelimit-remaining-requests": "0"}
    assert rate_limit_wait_seconds(both) == 360
    assert rate_limit_wait_seconds({**USED_UP, "x-ratelimit-remaining-requests": "1"}) == 0
    assert rate_limit_wait_seconds({}) == 0


def test_a_completion_reports_the_wait_its_headers_ask_for(server):
    server.then(ok(headers=USED_UP))
    assert client_of(server).complete(chat()).rate_limit_wait_s == 1.5
    assert client_of(server).complete(chat()).rate_limit_wait_s == 0  # headers absent: no wait


def test_a_429_without_retry_after_waits_for_the_used_up_budget_to_reset(server):
    server.then(error(429, "rate_limit_exceeded", {"x-ratelimit-remaining-tokens": "0",
                                                   "x-ratelimit-reset-tokens": "1s"}))
    client_of(server).complete(chat())
    assert len(server.requests) == 2 and server.arrivals[1] - server.arrivals[0] >= 1.0


def test_a_used_up_budget_holds_the_next_request_of_every_process_until_its_reset(db, db_url, server, account):
    add_business(db, "Dupont", account_id=account)
    server.then(ok(headers=USED_UP))
    run_import(generator(db, client_of(server)), db, kinds=["description"])
    with db.connect() as conn:
        paused_until = utc(conn.execute(sa.select(ai_rate_limits.c.next_request_at)
                                        .where(ai_rate_limits.c.name == "test:test-model")).scalar_one())
    assert paused_until >= datetime.now(UTC) + timedelta(seconds=1)
    other_process = create_engine(db_url)  # another worker: its own engine, the same limiter row
    try:
        add_business(other_process, "Martin", account_id=account, import_id=2)
        started = time.monotonic()
        summary = run_import(generator(other_process, client_of(server)), other_process, import_id=2,
                             kinds=["description"])
    finally:
        other_process.dispose()
    assert summary.generated == 1 and time.monotonic() - started >= 1.0
    assert server.arrivals[1] - server.arrivals[0] >= 1.5


def test_a_pause_never_shortens_a_later_booking(db):
    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    pause_until(db, "p:m", now + timedelta(seconds=30), now=now)
    pause_until(db, "p:m", now + timedelta(seconds=5), now=now)
    assert book_start(db, "p:m", requests_per_minute=60, tokens_per_minute=1_000_000, tokens=10, now=now) == 30
    assert book_start(db, "p:m", requests_per_minute=60, tokens_per_minute=1_000_000, tokens=10, now=now) == 31
