"""The sweep: expire, reap, probe open breakers, then claim → send → finalise until nothing is due.

Claim in a short transaction (status `sending`, a lease, a fresh claim token, attempts + 1; PostgreSQL
skips rows another sweep locked), COMMIT, send with no transaction open, finalise only rows still
holding the claim token: a sweep whose lease ran out never overwrites a row that was claimed again.
Before each HTTP request its attempt row is written, so after a crash the reaper knows whether the
request may have left. On SQLite one sweep at a time holds a lease row (`sweep_leases`); another waits.
"""

from __future__ import annotations

import logging
import math
import queue
import random
import time
import uuid
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from nightshift.db.engine import (
    TRANSIENT_DB_ERRORS,
    GroupWriter,
    advisory_lock_key,
    is_sqlite,
    read_transaction,
    write_transaction,
)
from nightshift.db.schema import notification_attempts, notifications, sweep_leases
from nightshift.masking import mask_phone
from nightshift.notification_settings import NotificationSettings
from nightshift.notifications import breaker
from nightshift.notifications.backoff import retry_delay
from nightshift.notifications.classify import Classification, Outcome, classify
from nightshift.notifications.outbox import DEFAULT_ACCOUNT, DUE_STATUSES, as_utc, now_utc, scrubbed_body
from nightshift.notifications.pacing import Pacer
from nightshift.notifications.providers import Backend, OutboundMessage, Reply

logger = logging.getLogger("nightshift.notifications")
SWEEP_LEASE = "notification_sweep"
STARTED = "started"  # the outcome of an attempt row whose request is on its way
FINALISE_EVERY_ROWS = 100
FINALISE_EVERY_SECONDS = 0.5
DB_TRIES = 3
# Send threads of one sweep: below the engine's pool (5 + 10 overflow) so no thread waits for a connection.
MAX_WORKERS = 12
T = TypeVar("T")


def with_db_retry(action: Callable[[], T], *, tries: int = DB_TRIES, rng: random.Random | None = None) -> T:
    """A claim or finalise retried on transient database errors (exponential, full jitter). The HTTP
    call is never inside: the outbox, not this, decides when a message is sent again."""
    rng = rng or random.Random()
    for attempt in range(1, tries + 1):
        try:
            return action()
        except TRANSIENT_DB_ERRORS:
            if attempt == tries:
                raise
            time.sleep(rng.uniform(0, 0.2 * 2 ** attempt))
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Claimed:
    id: int
    token: str
    attempt_no: int
    max_attempts: int
    recipient: str
    body: str
    message_type: str
    priority: int
    account: str
    expires_at: datetime | None
    lease_until: datetime


@dataclass
class SendResult:
    claimed: Claimed
    kind: str  # an Outcome, or "expired" / "released" when no request was made
    classification: Classification | None = None
    reply: Reply | None = None
    attempt_id: int | None = None


@dataclass
class SweepSummary:
    provider: str
    leaves_machine: bool
    counts: Counter = field(default_factory=Counter)
    skipped_by_breaker: int = 0
    oldest_due_age_s: float = 0.0
    breakers: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        keys = ("claimed", "urgent_mid_batch", "sent", "temporary", "permanent", "account", "ambiguous",
                "out_of_attempts", "expired", "released", "lost_lease", "reaped_retry", "reaped_unknown", "reconciled")
        return {"provider": self.provider, "leaves_machine": self.leaves_machine,
                **{key: self.counts.get(key, 0) for key in keys},
                "skipped_by_breaker": self.skipped_by_breaker, "oldest_due_age_s": round(self.oldest_due_age_s, 1),
                "breakers": self.breakers}


def _due(now: datetime, source_app: str | None = None) -> list:
    conditions = [notifications.c.status.in_(DUE_STATUSES), notifications.c.next_attempt_at <= now,
                  sa.or_(notifications.c.expires_at.is_(None), notifications.c.expires_at > now)]
    if source_app is not None:
        conditions.append(notifications.c.source_app == source_app)
    return conditions


# --- expire and reap -------------------------------------------------------------------------------

def expire(engine: Engine, settings: NotificationSettings, now: datetime | None = None) -> int:
    """Due rows past their TTL become `expired` (never sent); sensitive bodies are scrubbed."""
    now = now or now_utc()
    with write_transaction(engine) as conn:
        return conn.execute(notifications.update().where(
            notifications.c.status.in_(DUE_STATUSES), notifications.c.expires_at <= now).values(
            status="expired", body=scrubbed_body(settings), last_error_class="expired", updated_at=now,
            claim_token=None, lease_until=None)).rowcount


def reap(engine: Engine, settings: NotificationSettings, now: datetime | None = None) -> Counter:
    """Rows left in `sending` by a sweep that died, and `unknown` rows whose reconcile window ended.

    Expired lease: no attempt row for the claim means the request never left → failed_retry (the
    attempt is given back); an attempt row means it may have left → unknown, waiting for a receipt.
    After the window an unknown row is retried, except sensitive types (an OTP is never sent twice):
    failed_final. An attempt a late sweep finalised as sent makes the row sent.
    """
    now = now or now_utc()
    counts: Counter = Counter()
    attempt = notification_attempts.alias("attempt")
    join = notifications.outerjoin(attempt, sa.and_(attempt.c.notification_id == notifications.c.id,
                                                    attempt.c.attempt_no == notifications.c.attempts))
    window = timedelta(seconds=settings.reconcile_window_seconds)
    with write_transaction(engine) as conn:
        stale = conn.execute(sa.select(notifications.c.id, notifications.c.claim_token, notifications.c.attempts,
                                       attempt.c.id.label("attempt_id"))
                             .select_from(join).where(notifications.c.status == "sending",
                                                      notifications.c.lease_until < now)).all()
        for row in stale:
            mine = (notifications.c.id == row.id, notifications.c.status == "sending",
                    notifications.c.claim_token == row.claim_token)
            if row.attempt_id is None:
                values = {"status": "pending" if row.attempts <= 1 else "failed_retry",
                          "attempts": notifications.c.attempts - 1, "next_attempt_at": now,
                          "last_error_class": "lease_expired"}
                kind = "reaped_retry"
            else:
                values = {"status": "unknown", "next_attempt_at": now + window, "last_error_class": "ambiguous",
                          "last_error_code": "lease_expired"}
                kind = "reaped_unknown"
            if conn.execute(notifications.update().where(*mine).values(
                    **values, claim_token=None, lease_until=None, updated_at=now)).rowcount:
                counts[kind] += 1
        waited = conn.execute(sa.select(notifications.c.id, notifications.c.message_type, notifications.c.attempts,
                                        notifications.c.max_attempts, attempt.c.outcome,
                                        attempt.c.provider_account.label("attempt_account"))
                              .select_from(join).where(notifications.c.status == "unknown",
                                                       notifications.c.next_attempt_at <= now)).all()
        sensitive = {name for name, kind in settings.types.items() if kind.sensitive}
        for row in waited:
            if row.outcome == Outcome.SENT:
                values = {"status": "sent", "sent_at": now, "body": scrubbed_body(settings)}
            elif row.message_type in sensitive or row.attempts >= row.max_attempts:
                values = {"status": "failed_final", "body": scrubbed_body(settings),
                          "last_error_text": "the provider may have received it; not sent again"}
            else:
                values = {"status": "failed_retry", "next_attempt_at": now}
            if conn.execute(notifications.update().where(notifications.c.id == row.id,
                                                         notifications.c.status == "unknown")
                            .values(**values, updated_at=now)).rowcount:
                counts["reconciled"] += 1
    return counts


# --- the SQLite sweep lease ------------------------------------------------------------------------

@contextmanager
def sweep_lease(engine: Engine, settings: NotificationSettings, *, log: Any = logger,
                wait_seconds: float = 0.25) -> Iterator[Callable[[], None]]:
    """One sweep at a time on SQLite (PostgreSQL needs none: SKIP LOCKED). Waits while another live
    sweep holds it (a dead one's lease expires); yields a function that renews it."""
    if not is_sqlite(engine.url):
        yield lambda: None
        return
    holder = str(uuid.uuid4())
    lease = timedelta(seconds=settings.sweep_lease_seconds)
    announced = False
    while True:
        now = now_utc()
        with write_transaction(engine) as conn:
            current = conn.execute(sa.select(sweep_leases).where(sweep_leases.c.name == SWEEP_LEASE)).first()
            if current is None:
                conn.execute(sweep_leases.insert().values(name=SWEEP_LEASE, holder=holder, lease_until=now + lease))
                break
            if as_utc(current.lease_until) <= now:
                conn.execute(sweep_leases.update().where(sweep_leases.c.name == SWEEP_LEASE)
                             .values(holder=holder, lease_until=now + lease))
                break
        if not announced:
            log.info("another notification sweep holds the SQLite sweep lease; waiting for it")
            announced = True
        time.sleep(wait_seconds)

    def renew() -> None:
        with write_transaction(engine) as conn:
            held = conn.execute(sweep_leases.update().where(
                sweep_leases.c.name == SWEEP_LEASE, sweep_leases.c.holder == holder)
                .values(lease_until=now_utc() + lease)).rowcount
        if not held:
            raise RuntimeError("the SQLite sweep lease was taken over (this sweep stalled longer than "
                               "notifications.sweep_lease_seconds); stopping before claiming more")

    try:
        yield renew
    finally:
        with write_transaction(engine) as conn:
            conn.execute(sweep_leases.delete().where(sweep_leases.c.name == SWEEP_LEASE,
                                                     sweep_leases.c.holder == holder))


@contextmanager
def paced_accounts(engine: Engine, provider: str, accounts: set[str]) -> Iterator[set[str]]:
    """The paced accounts this sweep may send for: on PostgreSQL one sweep at a time per account (a
    session advisory lock, outside any transaction; a dead sweep's goes with its connection), so two
    sweeps never pace one account twice over. On SQLite the sweep lease already makes sweeps take turns."""
    if is_sqlite(engine.url) or not accounts:
        yield set(accounts)
        return
    keys = {account: advisory_lock_key(f"notifications:pacing:{provider}:{account}") for account in accounts}
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        held = {account for account, key in keys.items()
                if conn.execute(sa.select(sa.func.pg_try_advisory_lock(key))).scalar()}
        try:
            yield held
        finally:
            for account in held:
                conn.execute(sa.select(sa.func.pg_advisory_unlock(keys[account])))


# --- claim, send, finalise -------------------------------------------------------------------------

def claim(engine: Engine, *, provider: str, limit: int, lease_seconds: float, now: datetime | None = None,
          accounts: tuple[str, ...] | None = None, exclude_accounts: tuple[str, ...] = (),
          source_app: str | None = None, max_priority: int | None = None) -> list[Claimed]:
    """The one claim query: due rows by priority then due time, at most `limit`, in one statement."""
    now = now or now_utc()
    token = str(uuid.uuid4())
    lease_until = now + timedelta(seconds=lease_seconds)
    conditions = _due(now, source_app)
    if max_priority is not None:
        conditions.append(notifications.c.priority <= max_priority)
    if accounts is not None:
        conditions.append(notifications.c.provider_account.in_(accounts))
    if exclude_accounts:
        conditions.append(notifications.c.provider_account.not_in(exclude_accounts))
    due = (sa.select(notifications.c.id).where(*conditions)
           .order_by(notifications.c.priority, notifications.c.next_attempt_at, notifications.c.id)
           .limit(limit).with_for_update(skip_locked=True))
    statement = (notifications.update().where(notifications.c.id.in_(due.scalar_subquery()))
                 .values(status="sending", claim_token=token, lease_until=lease_until, provider=provider,
                         attempts=notifications.c.attempts + 1, updated_at=now)
                 .returning(notifications.c.id, notifications.c.attempts, notifications.c.max_attempts,
                            notifications.c.recipient, notifications.c.body, notifications.c.message_type,
                            notifications.c.priority, notifications.c.provider_account,
                            notifications.c.expires_at, notifications.c.next_attempt_at))

    def run() -> list[Any]:
        with write_transaction(engine) as conn:
            return conn.execute(statement).all()

    rows = sorted(with_db_retry(run), key=lambda r: (r.priority, as_utc(r.next_attempt_at), r.id))
    return [Claimed(r.id, token, r.attempts, r.max_attempts, r.recipient, r.body, r.message_type, r.priority,
                    r.provider_account, as_utc(r.expires_at), lease_until) for r in rows]


def preview(engine: Engine, *, limit: int, source_app: str | None = None,
            now: datetime | None = None) -> list[Any]:
    """What a claim would take now (for --dry-run): nothing is changed."""
    now = now or now_utc()
    with read_transaction(engine) as conn:
        return conn.execute(sa.select(notifications).where(*_due(now, source_app))
                            .order_by(notifications.c.priority, notifications.c.next_attempt_at, notifications.c.id)
                            .limit(limit)).all()


def backlog(engine: Engine, now: datetime | None = None, *,
            exclude_accounts: tuple[str, ...] = ()) -> tuple[int, float]:
    """(due rows, age in seconds of the oldest due one)."""
    now = now or now_utc()
    conditions = _due(now)
    if exclude_accounts:
        conditions.append(notifications.c.provider_account.not_in(exclude_accounts))
    with read_transaction(engine) as conn:
        count, oldest = conn.execute(sa.select(sa.func.count(), sa.func.min(notifications.c.next_attempt_at))
                                     .where(*conditions)).one()
    oldest = as_utc(oldest)
    return count, (now - oldest).total_seconds() if oldest else 0.0


# Built once: a sweep writes one per send, and building the statement each time cost more than running it.
START_ATTEMPT = notification_attempts.insert().returning(notification_attempts.c.id, sort_by_parameter_order=True)


def _start_attempt(writer: GroupWriter, claimed: Claimed, provider: str) -> int:
    # Committed before the request leaves, with the rows of the other sends starting at the same time.
    return writer.insert({
        "notification_id": claimed.id, "attempt_no": claimed.attempt_no, "provider": provider,
        "provider_account": claimed.account, "started_at": now_utc(), "outcome": STARTED}).id


def last_send_ago(engine: Engine, provider: str, account: str, now: datetime | None = None) -> float | None:
    """Seconds since a request to the account last started (any sweep, any process), None if never."""
    with read_transaction(engine) as conn:
        last = conn.execute(sa.select(sa.func.max(notification_attempts.c.started_at)).where(
            notification_attempts.c.provider_account == account, notification_attempts.c.provider == provider)
        ).scalar()
    return None if last is None else max(0.0, ((now or now_utc()) - as_utc(last)).total_seconds())


def _error_code(result: SendResult) -> str | None:
    reply = result.reply
    if reply is None:
        return None
    if reply.error_code is not None:
        return reply.error_code
    if reply.transport is not None:
        return reply.transport.value
    return None if reply.http_status is None or reply.http_status < 300 else f"http_{reply.http_status}"


def _final_values(result: SendResult, settings: NotificationSettings, now: datetime,
                  rng: random.Random) -> tuple[dict[str, Any], str]:
    """The notification's new values and the outcome counted for it."""
    claimed, kind = result.claimed, result.kind
    cleared = {"claim_token": None, "lease_until": None, "updated_at": now}
    if kind in ("expired", "released"):
        back = {"attempts": notifications.c.attempts - 1}
        if kind == "expired":
            return {**cleared, **back, "status": "expired", "body": scrubbed_body(settings),
                    "last_error_class": "expired"}, kind
        return {**cleared, **back, "status": "pending" if claimed.attempt_no <= 1 else "failed_retry",
                "next_attempt_at": now}, kind
    reply = result.reply
    error = {"last_error_code": _error_code(result), "last_error_class": kind,
             "last_error_text": reply.detail if reply else None}
    if kind == Outcome.SENT:
        return {**cleared, "status": "sent", "sent_at": now, "provider_message_id": reply.message_id,
                "body": scrubbed_body(settings), "last_error_code": None, "last_error_class": None,
                "last_error_text": None}, kind
    if kind == Outcome.PERMANENT:
        return {**cleared, **error, "status": "failed_final", "body": scrubbed_body(settings)}, kind
    if kind == Outcome.ACCOUNT:
        # The account is broken, not the message: its attempt is given back and it stays due.
        return {**cleared, **error, "status": "failed_retry", "next_attempt_at": now,
                "attempts": notifications.c.attempts - 1}, kind
    if kind == Outcome.AMBIGUOUS:
        return {**cleared, **error, "status": "unknown",
                "next_attempt_at": now + timedelta(seconds=settings.reconcile_window_seconds)}, kind
    if claimed.attempt_no >= claimed.max_attempts:
        return {**cleared, **error, "status": "failed_final", "body": scrubbed_body(settings)}, "out_of_attempts"
    policy = settings.backoff[settings.types[claimed.message_type].backoff] \
        if claimed.message_type in settings.types else settings.backoff["default"]
    delay = retry_delay(policy, claimed.attempt_no, rule=result.classification.rule,
                        retry_after=reply.retry_after if reply else None, rng=rng)
    return {**cleared, **error, "status": "failed_retry", "next_attempt_at": now + timedelta(seconds=delay)}, kind


def finalise(engine: Engine, settings: NotificationSettings, provider: str, results: list[SendResult], *,
             now: datetime | None = None, rng: random.Random | None = None) -> Counter:
    """Write a chunk of send results in one transaction, each only where its claim token still holds,
    with its attempt row; then the breakers of the accounts involved."""
    rng = rng or random.Random()
    counts: Counter = Counter()

    def run() -> Counter:
        stamp = now or now_utc()
        chunk: Counter = Counter()
        outcomes: dict[str, list[str]] = defaultdict(list)
        account_errors: dict[str, str] = {}
        attempt_rows: list[dict[str, Any]] = []
        # Rows that set the same columns go in one executemany: a round trip per chunk, not per row. A column
        # set by an expression (attempts - 1, the scrubbed body) always gets the same one, so the names
        # of the columns are the group.
        groups: dict[tuple, tuple[dict[str, Any], list[dict[str, Any]], Counter]] = {}
        for result in results:
            claimed = result.claimed
            values, counted = _final_values(result, settings, stamp, rng)
            if result.attempt_id is not None:
                reply = result.reply
                attempt_rows.append({
                    "_id": result.attempt_id, "outcome": str(result.kind), "http_status": reply.http_status,
                    "error_code": _error_code(result), "latency_ms": reply.latency_ms, "error_text": reply.detail,
                    "error_class": "never_left" if result.classification.never_left else str(result.kind)})
                outcomes[claimed.account].append(str(result.kind))
                if result.kind == Outcome.ACCOUNT:
                    account_errors[claimed.account] = _error_code(result) or "account"
            expressions = {k: v for k, v in values.items() if isinstance(v, sa.ColumnElement)}
            params = {k: v for k, v in values.items() if k not in expressions}
            key = (tuple(sorted(params)), tuple(sorted(expressions)))
            group = groups.setdefault(key, (expressions, [], Counter()))
            group[1].append({"_id": claimed.id, "_token": claimed.token, **{f"v_{k}": v for k, v in params.items()}})
            group[2][counted] += 1
        with write_transaction(engine) as conn:
            if attempt_rows:
                conn.execute(notification_attempts.update().where(
                    notification_attempts.c.id == sa.bindparam("_id")).values(
                    **{k: sa.bindparam(k) for k in attempt_rows[0] if k != "_id"}), attempt_rows)
            for (columns, _), (expressions, rows, counted) in groups.items():
                updated = conn.execute(notifications.update().where(
                    notifications.c.id == sa.bindparam("_id"), notifications.c.claim_token == sa.bindparam("_token"),
                    notifications.c.status == "sending").values(
                    **{k: sa.bindparam(f"v_{k}") for k in columns}, **expressions), rows).rowcount
                # Rows whose claim token no longer holds (their lease ran out) are left as they are.
                if updated == len(rows):
                    chunk.update(counted)
                else:
                    chunk["lost_lease"] += len(rows) - updated
                    chunk[next(iter(counted))] += updated
            for account, seen in outcomes.items():
                breaker.record_outcomes(conn, provider, account, seen, stamp, settings=settings.breaker,
                                        account_error=account_errors.get(account))
        return chunk

    counts.update(with_db_retry(run))
    return counts


def provider_account_id(settings: NotificationSettings, provider: str, account: str) -> str | None:
    """The provider's id of an account (WaChap accountId, Meta phone-number id); None: the backend's default."""
    configured = settings.account(account)
    if configured is None:
        return None
    return {"wachap": configured.wachap_account_id, "meta": configured.meta_phone_number_id}.get(provider)


class _Sender:
    """Sends claimed rows on a thread pool, each account through its Pacer."""

    def __init__(self, engine: Engine, settings: NotificationSettings, backend: Backend, log: Any) -> None:
        self.engine, self.settings, self.backend, self.log = engine, settings, backend, log
        self.attempts = GroupWriter(engine, START_ATTEMPT)
        self.pacers: dict[str, Pacer] = {}
        self.margin = timedelta(seconds=settings.connect_timeout_seconds + settings.read_timeout_seconds)

    def pacer(self, account: str) -> Pacer:
        if account not in self.pacers:
            pacing = self.settings.pacing_for(self.backend.name, account)
            since = last_send_ago(self.engine, self.backend.name, account) if pacing.paced else None
            self.pacers[account] = Pacer(pacing, last_start_ago=since)
        return self.pacers[account]

    def send(self, claimed: Claimed) -> SendResult:
        pacer = self.pacer(claimed.account)
        with pacer.slot():
            with pacer.turn():
                now = now_utc()
                if claimed.expires_at is not None and claimed.expires_at <= now:
                    return SendResult(claimed, "expired")
                if claimed.lease_until - now < self.margin:
                    return SendResult(claimed, "released")  # its lease would end mid-request: back to due
                attempt_id = _start_attempt(self.attempts, claimed, self.backend.name)
            message = OutboundMessage(claimed.id, claimed.recipient, claimed.body, claimed.account)
            reply = self.backend.send(message, provider_account_id(self.settings, self.backend.name,
                                                                   claimed.account))
        classification = classify(self.backend.name, reply.http_status, reply.error_code, reply.transport)
        if not self.backend.leaves_machine:
            self.log.info(f"sandbox: notification {claimed.id} to {mask_phone(claimed.recipient)} recorded, "
                          "nothing left this machine")
        return SendResult(claimed, classification.outcome, classification, reply, attempt_id)

    def capacity(self, account: str) -> int | None:
        """How many of an account's rows one claim may take so that all start before their lease ends."""
        pacing = self.settings.pacing_for(self.backend.name, account)
        gap = pacing.min_interval_seconds + pacing.jitter_seconds
        if gap <= 0:
            return None
        usable = self.settings.lease_seconds - self.margin.total_seconds()
        return max(1, math.floor(usable / gap))


def probe_breakers(engine: Engine, settings: NotificationSettings, backend: Backend) -> dict[str, str]:
    """Probe the open breakers whose probe is due (a request that sends nothing)."""
    return breaker.probe_open(
        engine, backend.name, lambda account: backend.probe(provider_account_id(settings, backend.name, account)),
        now_utc(), settings=settings.breaker)


def send_due(engine: Engine, settings: NotificationSettings, backend: Backend, *, limit: int | None = None,
             source_app: str | None = None, log: Any = logger) -> SweepSummary:
    """Claim, send, finalise until nothing is due, the limit is reached or `sweep_max_seconds` passed."""
    summary = SweepSummary(backend.name, backend.leaves_machine)
    rng = random.Random()
    deadline = time.monotonic() + settings.sweep_max_seconds
    sender = _Sender(engine, settings, backend, log)
    paced = {a.name for a in settings.accounts if sender.capacity(a.name)}
    if sender.capacity(DEFAULT_ACCOUNT):
        paced.add(DEFAULT_ACCOUNT)
    workers = min(MAX_WORKERS, max(8, sum(sender.pacer(a).pacing.max_concurrency for a in {DEFAULT_ACCOUNT, *paced})))
    with closing(sender.attempts), sweep_lease(engine, settings, log=log) as renew, \
            paced_accounts(engine, backend.name, paced) as mine, \
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix="nightshift-send") as pool, \
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="nightshift-finalise") as writer:
        if paced - mine:
            log.info(f"another sweep is sending for {', '.join(sorted(paced - mine))}; this one leaves them alone")

        def urgent(room: int) -> list[Claimed]:
            return _claim_batch(engine, settings, backend.name, sender, paced, mine, room, source_app,
                                max_priority=settings.urgent_max_priority)

        remaining = limit
        while (remaining is None or remaining > 0) and time.monotonic() < deadline:
            size = settings.batch_size if remaining is None else min(remaining, settings.batch_size)
            kept = urgent_slots(settings, size)
            batch = _claim_batch(engine, settings, backend.name, sender, paced, mine, size - kept, source_app)
            if not batch:
                break
            counts = _send_batch(engine, settings, backend.name, sender, pool, writer, batch, renew, rng,
                                 in_flight=2 * workers, urgent=urgent, urgent_room=kept)
            summary.counts.update(counts)
            if remaining is not None:
                remaining -= counts["claimed"]
            renew()
    states = breaker.states(engine, backend.name)
    summary.breakers.update({account: state.state for account, state in states.items()})
    summary.skipped_by_breaker = _due_count(engine, blocked_accounts(engine, backend.name))
    _, summary.oldest_due_age_s = backlog(engine)
    return summary


def run_sweep(engine: Engine, settings: NotificationSettings, backend: Backend, *, limit: int | None = None,
              source_app: str | None = None, log: Any = logger) -> SweepSummary:
    """One whole sweep, as the job's ops run it: expire, reap, probe open breakers, then send_due."""
    expired = expire(engine, settings)
    reaped = reap(engine, settings)
    probed = probe_breakers(engine, settings, backend)
    summary = send_due(engine, settings, backend, limit=limit, source_app=source_app, log=log)
    summary.counts["expired"] += expired
    summary.counts.update(reaped)
    summary.breakers = {**probed, **summary.breakers}
    return summary


def blocked_accounts(engine: Engine, provider: str) -> tuple[str, ...]:
    """Accounts whose breaker is open: their notifications stay due and are not claimed."""
    return tuple(sorted(a for a, state in breaker.states(engine, provider).items() if state.state == breaker.OPEN))


def sweep_wanted(engine: Engine, provider: str, now: datetime | None = None) -> tuple[int, float, int, bool]:
    """What the outbox sensor looks at: (due rows a sweep can send, age in seconds of the oldest of
    them, due rows held by open breakers, whether an open breaker's probe is due)."""
    now = now or now_utc()
    states = breaker.states(engine, provider)
    blocked = tuple(a for a, state in states.items() if state.state == breaker.OPEN)
    probe_due = any(state.state == breaker.OPEN and (state.open_until is None or state.open_until <= now)
                    for state in states.values())
    count, oldest = backlog(engine, now, exclude_accounts=blocked)
    return count, oldest, _due_count(engine, blocked), probe_due


def _due_count(engine: Engine, accounts: tuple[str, ...]) -> int:
    if not accounts:
        return 0
    with read_transaction(engine) as conn:
        return conn.execute(sa.select(sa.func.count()).where(
            *_due(now_utc()), notifications.c.provider_account.in_(accounts))).scalar_one()


def urgent_slots(settings: NotificationSettings, size: int) -> int:
    """Rows of a batch of `size` kept for urgent rows that fall due while it is sent (none of a batch of one)."""
    return min(size - 1, math.ceil(settings.urgent_share * size)) if size > 1 else 0


def _claim_batch(engine: Engine, settings: NotificationSettings, provider: str, sender: _Sender, paced: set[str],
                 mine: set[str], size: int, source_app: str | None, *,
                 max_priority: int | None = None) -> list[Claimed]:
    """Rows to send now: none of an open breaker's account nor of a paced account another sweep sends
    for, a half-open account's few, a paced account's as many as its pace can start within the lease,
    every other account's together."""
    states = breaker.states(engine, provider)
    held = {account for account, state in states.items() if state.state != breaker.CLOSED}
    separate = held | paced
    batch = claim(engine, provider=provider, limit=size, lease_seconds=settings.lease_seconds,
                  exclude_accounts=tuple(sorted(separate)), source_app=source_app, max_priority=max_priority)
    for account in sorted(separate):
        state = states.get(account)
        if (state is not None and state.state == breaker.OPEN) or (account in paced and account not in mine):
            continue
        allowed = [n for n in (size, sender.capacity(account),
                               state.half_open_remaining if state is not None and state.state == breaker.HALF_OPEN
                               else None) if n is not None]
        batch += claim(engine, provider=provider, limit=min(allowed), lease_seconds=settings.lease_seconds,
                       accounts=(account,), source_app=source_app, max_priority=max_priority)
    return batch


def _send_batch(engine: Engine, settings: NotificationSettings, provider: str, sender: _Sender,
                pool: ThreadPoolExecutor, writer: ThreadPoolExecutor, batch: list[Claimed],
                renew: Callable[[], None], rng: random.Random, *, in_flight: int,
                urgent: Callable[[int], list[Claimed]], urgent_room: int) -> Counter:
    """Send a claimed batch on the pool; finalise the results as they come, a chunk at a time on the
    `writer` thread, so that sends go on while a chunk is written (results that arrive meanwhile join the
    next chunk). At most `in_flight` sends are handed to the pool at once, so urgent rows claimed
    meanwhile (up to `urgent_room`) go out next, ahead of the batch's rest. A send that raised leaves its
    row `sending` for the reaper, and its error is raised once the others are written."""
    counts: Counter = Counter(claimed=len(batch))
    finished: queue.SimpleQueue = queue.SimpleQueue()
    waiting, jumped = deque(batch), deque()
    submitted = received = 0

    def feed() -> None:
        nonlocal submitted
        while submitted - received < in_flight and (jumped or waiting):
            claimed = jumped.popleft() if jumped else waiting.popleft()
            pool.submit(sender.send, claimed).add_done_callback(finished.put)
            submitted += 1

    results: list[SendResult] = []
    errors: list[BaseException] = []
    writing: Future | None = None
    last_write = last_renew = last_urgent = time.monotonic()
    feed()
    while received < submitted or jumped or waiting or results or writing is not None:
        try:
            future = finished.get(timeout=FINALISE_EVERY_SECONDS / 10 if writing or results else FINALISE_EVERY_SECONDS)
        except queue.Empty:
            future = None
        while future is not None:
            received += 1
            if future.exception() is None:
                results.append(future.result())
            else:
                errors.append(future.exception())
            try:
                future = finished.get_nowait()
            except queue.Empty:
                future = None
        moment = time.monotonic()
        if urgent_room and moment - last_urgent >= FINALISE_EVERY_SECONDS:
            arrived = urgent(urgent_room)
            jumped.extend(arrived)
            urgent_room -= len(arrived)
            counts["claimed"] += len(arrived)
            counts["urgent_mid_batch"] += len(arrived)
            last_urgent = moment
        feed()
        if writing is not None and writing.done():
            counts.update(writing.result())
            writing = None
        if writing is None and results and (len(results) >= FINALISE_EVERY_ROWS or received == submitted
                                            or moment - last_write >= FINALISE_EVERY_SECONDS):
            writing = writer.submit(finalise, engine, settings, provider, results, rng=rng)
            results, last_write = [], moment
        if moment - last_renew >= settings.sweep_lease_seconds / 3:
            renew()
            last_renew = moment
    if errors:
        raise errors[0]
    return counts
