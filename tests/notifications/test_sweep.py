"""The sweep on SQLite and PostgreSQL against real local providers: outcomes, TTL, scrubbing, claim
tokens, the reaper, ambiguous OTPs, the circuit breaker, priority order and pacing."""

import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from nightshift.db.engine import GroupWriter
from nightshift.db.schema import notification_attempts, notifications, provider_breaker_changes
from nightshift.notification_settings import BreakerSettings, Pacing
from nightshift.notifications import outbox, sweep
from nightshift.notifications.outbox import enqueue, now_utc
from nightshift.notifications.providers import SandboxBackend
from tests.notifications.fake_provider import (
    error_code,
    fast_settings,
    hang,
    meta_backend,
    ok,
    status,
    wachap_backend,
)

SETTINGS = fast_settings()


def send(db, settings=SETTINGS, **request):
    request = {"source_app": "cargo", "to": "70 12 34 56", "body": "Votre colis est arrivé",
               "message_type": "colis_status", **request}
    return enqueue(db, settings, **request).id


def row(db, notification_id):
    with db.connect() as conn:
        return conn.execute(sa.select(notifications).where(notifications.c.id == notification_id)).one()


def attempts(db, notification_id):
    with db.connect() as conn:
        return conn.execute(sa.select(notification_attempts).where(
            notification_attempts.c.notification_id == notification_id).order_by(notification_attempts.c.id)).all()


def make_due(db, *ids):
    with db.begin() as conn:
        conn.execute(notifications.update().where(notifications.c.id.in_(ids)).values(
            next_attempt_at=now_utc() - timedelta(seconds=1)))


def test_sandbox_sends_records_and_scrubs_sensitive_bodies(db):
    otp, parcel = send(db, message_type="otp", body="code 482913"), send(db)
    summary = sweep.run_sweep(db, SETTINGS, SandboxBackend())
    assert summary.as_dict()["sent"] == 2 and not summary.leaves_machine
    assert (row(db, otp).status, row(db, otp).body) == ("sent", "")
    assert (row(db, parcel).status, row(db, parcel).body) == ("sent", "Votre colis est arrivé")
    [attempt] = attempts(db, parcel)
    assert (attempt.outcome, attempt.provider, attempt.http_status) == ("sent", "sandbox", 200)
    assert row(db, parcel).provider_message_id.startswith("sandbox-")


def test_an_otp_past_its_ttl_is_never_sent(db, wachap_server):
    otp = send(db, message_type="otp", body="code 111", ttl=timedelta(seconds=-1))
    sweep.run_sweep(db, SETTINGS, wachap_backend(wachap_server))
    assert (row(db, otp).status, row(db, otp).body) == ("expired", "")
    assert not wachap_server.requests


def test_temporary_then_success_with_backoff_and_attempt_rows(db, wachap_server):
    wachap_server.then(status(503))
    notification = send(db)
    before = now_utc()
    assert sweep.run_sweep(db, SETTINGS, wachap_backend(wachap_server)).counts["temporary"] == 1
    failed = row(db, notification)
    assert (failed.status, failed.attempts, failed.last_error_code) == ("failed_retry", 1, "http_503")
    wait = (outbox.as_utc(failed.next_attempt_at) - before).total_seconds()
    assert 1800 * 0.8 - 1 <= wait <= 1800 * 1.2 + 1
    make_due(db, notification)
    sweep.run_sweep(db, SETTINGS, wachap_backend(wachap_server))
    assert (row(db, notification).status, row(db, notification).attempts) == ("sent", 2)
    first, second = attempts(db, notification)
    assert (first.outcome, first.http_status, second.outcome) == ("temporary", 503, "sent")
    assert first.latency_ms is not None and first.attempt_no == 1 and second.attempt_no == 2


def test_retry_after_and_meta_pair_rate(db, wachap_server, meta_server):
    wachap_server.then(status(429, {"Retry-After": "7200"}))
    limited = send(db)
    start = now_utc()
    sweep.run_sweep(db, SETTINGS, wachap_backend(wachap_server))
    assert (outbox.as_utc(row(db, limited).next_attempt_at) - start).total_seconds() >= 7200
    meta_server.then(error_code("131056"))
    pair = send(db, source_app="meta-app")
    start = now_utc()
    sweep.run_sweep(db, SETTINGS, meta_backend(meta_server), source_app="meta-app")
    waited = (outbox.as_utc(row(db, pair).next_attempt_at) - start).total_seconds()
    assert 1 <= waited < 3 and row(db, pair).last_error_code == "131056"


def test_permanent_and_out_of_attempts_are_final(db, wachap_server):
    # Both are sent at once: the answer depends on the message, not on which request arrives first.
    wachap_server.default = lambda request: (
        error_code("INVALID_PHONE") if request["json"]["data"]["content"] == "first" else status(500))
    invalid = send(db, body="first", priority=1)
    last_try = send(db, body="second", max_attempts=1, message_type="account", priority=2)
    summary = sweep.run_sweep(db, SETTINGS, wachap_backend(wachap_server))
    assert summary.counts["permanent"] == 1 and summary.counts["out_of_attempts"] == 1
    assert (row(db, invalid).status, row(db, invalid).last_error_class) == ("failed_final", "permanent")
    assert (row(db, last_try).status, row(db, last_try).body) == ("failed_final", "")


def test_claim_orders_by_priority_then_due_time_and_respects_the_limit(db):
    low = send(db, priority=5)
    early = send(db, priority=3)
    urgent = send(db, priority=1)
    claimed = sweep.claim(db, provider="sandbox", limit=2, lease_seconds=30)
    assert [c.id for c in claimed] == [urgent, early]
    assert {row(db, c.id).status for c in claimed} == {"sending"}
    assert row(db, low).status == "pending"
    assert claimed[0].attempt_no == 1 and claimed[0].token == claimed[1].token


def test_a_sweep_whose_lease_ran_out_cannot_overwrite_a_reclaimed_row(db):
    notification = send(db)
    [stale] = sweep.claim(db, provider="wachap", limit=1, lease_seconds=30)
    # Its lease runs out (the sweep stalled); the reaper gives the row back (no attempt row) and
    # another sweep claims it again.
    later = now_utc() + timedelta(seconds=31)
    counts = sweep.reap(db, SETTINGS, now=later)
    assert counts["reaped_retry"] == 1 and row(db, notification).attempts == 0
    [fresh] = sweep.claim(db, provider="wachap", limit=1, lease_seconds=30, now=later)
    late = sweep.SendResult(stale, "permanent", reply=None)
    assert sweep.finalise(db, SETTINGS, "wachap", [late])["lost_lease"] == 1
    assert row(db, notification).status == "sending" and row(db, notification).claim_token == fresh.token


def test_reaper_sending_with_an_attempt_row_becomes_unknown(db):
    notification = send(db)
    [claimed] = sweep.claim(db, provider="wachap", limit=1, lease_seconds=30)
    writer = GroupWriter(db, sweep.START_ATTEMPT)
    sweep._start_attempt(writer, claimed, "wachap")  # the request was on its way when the sweep died
    writer.close()
    counts = sweep.reap(db, SETTINGS, now=now_utc() + timedelta(seconds=31))
    assert counts["reaped_unknown"] == 1
    reaped = row(db, notification)
    assert (reaped.status, reaped.attempts, reaped.claim_token) == ("unknown", 1, None)


def test_an_ambiguous_otp_is_never_sent_again(db, wachap_server):
    wachap_server.then(hang(2.0), hang(2.0))
    otp = send(db, message_type="otp", body="code 909090")
    parcel = send(db, body="colis 12")
    summary = sweep.run_sweep(db, SETTINGS, wachap_backend(wachap_server))
    assert summary.counts["ambiguous"] == 2
    assert row(db, otp).status == "unknown" and row(db, parcel).status == "unknown"
    later = now_utc() + timedelta(seconds=SETTINGS.reconcile_window_seconds + 1)
    assert sweep.reap(db, SETTINGS, now=later)["reconciled"] == 2
    assert (row(db, otp).status, row(db, otp).body) == ("failed_final", "")
    assert row(db, parcel).status == "failed_retry"  # not sensitive: retried after the window
    make_due(db, parcel)
    sweep.run_sweep(db, SETTINGS, wachap_backend(wachap_server))
    assert wachap_server.accepted["code 909090"] == 1
    assert row(db, parcel).status == "sent"


def test_401_opens_the_breaker_sweeps_skip_then_the_probe_closes_it(db, wachap_server):
    settings = fast_settings(breaker=BreakerSettings(probe_interval_seconds=1, half_open_messages=2))
    wachap_server.default = lambda request: status(401)
    wachap_server.probe_status = 401
    ids = [send(db, settings, body=f"message {n}") for n in range(5)]
    summary = sweep.run_sweep(db, settings, wachap_backend(wachap_server))
    assert summary.counts["account"] >= 1 and summary.breakers["default"] == "open"
    assert len(wachap_server.sends()) == summary.counts["account"]
    sends_before = len(wachap_server.sends())
    summary = sweep.run_sweep(db, settings, wachap_backend(wachap_server))
    assert len(wachap_server.sends()) == sends_before  # skipped, not sent
    assert summary.skipped_by_breaker == 5
    assert {row(db, n).attempts for n in ids} == {0}  # attempts not spent
    wachap_server.default = lambda request: ok()
    wachap_server.probe_status = 200
    time.sleep(1.1)  # the probe is due
    sweep.run_sweep(db, settings, wachap_backend(wachap_server))
    sweep.run_sweep(db, settings, wachap_backend(wachap_server))
    assert {row(db, n).status for n in ids} == {"sent"}
    with db.connect() as conn:
        changes = conn.execute(sa.select(provider_breaker_changes.c.from_state, provider_breaker_changes.c.to_state)
                               .order_by(provider_breaker_changes.c.id)).all()
    assert [tuple(c) for c in changes] == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


def test_half_of_twenty_attempts_failing_opens_the_breaker(db, wachap_server):
    wachap_server.default = lambda request: status(503)
    for n in range(20):
        send(db, body=f"m{n}")
    summary = sweep.run_sweep(db, SETTINGS, wachap_backend(wachap_server))
    assert summary.counts["temporary"] == 20 and summary.breakers["default"] == "open"


def test_pacing_keeps_the_measured_rate_under_the_limit(db, wachap_server):
    pacing = {"wachap": Pacing(min_interval_seconds=0.05, max_concurrency=2)}
    settings = fast_settings(pacing=pacing)
    for n in range(20):
        send(db, settings, body=f"paced {n}")
    sweep.run_sweep(db, settings, wachap_backend(wachap_server))
    times = sorted(wachap_server.accepted_at)
    assert len(times) == 20
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    # Starts are ≥ 50 ms apart; arrivals may jitter a little around that.
    assert (times[-1] - times[0]) >= 19 * 0.05 * 0.95
    assert min(gaps) > 0.03


def test_urgent_rows_that_fall_due_mid_batch_go_out_before_the_rest_of_a_bulk_batch(db, wachap_server):
    import threading

    settings = fast_settings(batch_size=50, pacing={"wachap": Pacing(min_interval_seconds=0.04, max_concurrency=1)})
    for n in range(50):
        send(db, settings, body=f"campagne {n}", priority=4)
    sweeper = threading.Thread(target=lambda: sweep.run_sweep(db, settings, wachap_backend(wachap_server)))
    sweeper.start()
    deadline = time.monotonic() + 10
    while len(wachap_server.sends()) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    otps = [send(db, settings, body=f"code {n}", message_type="otp", priority=1) for n in range(3)]
    sweeper.join(timeout=60)
    order = [request["json"]["data"]["content"] for request in wachap_server.sends()]
    assert len(order) == 53 and {row(db, n).status for n in otps} == {"sent"}
    # 40 bulk rows were claimed first (a fifth of the batch kept); the OTPs did not wait for them all.
    assert max(order.index(f"code {n}") for n in range(3)) < 40


def test_back_to_back_sweeps_keep_the_pace_between_them(db, wachap_server):
    settings = fast_settings(pacing={"wachap": Pacing(min_interval_seconds=0.6, max_concurrency=1)})
    send(db, settings, body="first sweep")
    sweep.run_sweep(db, settings, wachap_backend(wachap_server))
    send(db, settings, body="second sweep")
    sweep.run_sweep(db, settings, wachap_backend(wachap_server))
    first, second = sorted(wachap_server.accepted_at)
    assert second - first >= 0.6 * 0.9  # the second sweep waited for the first one's last send


def test_claim_skips_rows_another_transaction_holds_and_sqlite_sweeps_take_turns(db):
    import threading

    first, second = send(db, priority=1), send(db, priority=2)
    if db.dialect.name == "postgresql":
        with db.connect() as holder, holder.begin():
            holder.execute(sa.select(notifications.c.id).where(notifications.c.id == first).with_for_update())
            claimed = sweep.claim(db, provider="sandbox", limit=5, lease_seconds=30)
        assert [c.id for c in claimed] == [second]  # not blocked by, and not taking, the locked row
        return
    order: list[str] = []
    with sweep.sweep_lease(db, SETTINGS):
        waiter = threading.Thread(target=lambda: (sweep.run_sweep(db, SETTINGS, SandboxBackend()),
                                                  order.append("second sweep done")))
        waiter.start()
        time.sleep(0.5)
        order.append("first sweep done")
        assert row(db, first).status == "pending"  # the second sweep is waiting for the lease
    waiter.join(timeout=30)
    assert order == ["first sweep done", "second sweep done"]
    assert row(db, first).status == row(db, second).status == "sent"


def test_database_errors_of_a_claim_or_finalise_are_retried_then_raised():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise sa.exc.OperationalError("UPDATE", {}, Exception("server closed the connection"))
        return "done"

    assert sweep.with_db_retry(flaky) == "done" and len(calls) == 3
    calls.clear()

    def broken():
        calls.append(1)
        raise sa.exc.OperationalError("UPDATE", {}, Exception("down"))

    with pytest.raises(sa.exc.OperationalError):
        sweep.with_db_retry(broken)
    assert len(calls) == 3


def test_a_paced_account_is_sent_for_by_one_sweep_at_a_time(db, wachap_server):
    settings = fast_settings(pacing={"wachap": Pacing(min_interval_seconds=0.01, max_concurrency=2)})
    ids = [send(db, settings, body=f"paced {n}") for n in range(3)]
    with sweep.paced_accounts(db, "wachap", {"default"}) as first:
        assert first == {"default"}
        # Another sweep meanwhile: on PostgreSQL it leaves the account to the first one; on SQLite the
        # sweep lease makes them take turns instead (the first holds no lease here, so it sends).
        summary = sweep.run_sweep(db, settings, wachap_backend(wachap_server))
        if db.dialect.name == "postgresql":
            assert summary.counts["claimed"] == 0 and not wachap_server.sends()
            assert {row(db, n).status for n in ids} == {"pending"}
    summary = sweep.run_sweep(db, settings, wachap_backend(wachap_server))
    assert {row(db, n).status for n in ids} == {"sent"} and len(wachap_server.sends()) == 3
