"""The request state machine on `ai_requests`: pending → processing (lease + claim token) → completed |
failed | timeout. Every change after the claim is conditional on the claim token, so a worker whose lease
was taken over changes nothing. A failed or timed-out request with `next_attempt_at` is tried again from
then on (a temporary failure); without it, it stays failed (permanent, or out of attempts: the old dead
letter). A request without enough quota goes back to pending with wait_reason `quota`, its attempt given
back.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from nightshift.backoff import exponential_delay
from nightshift.db.engine import dialect_insert, read_transaction, write_transaction
from nightshift.db.schema import ai_contents, ai_requests

OPEN = ("pending", "processing")
RETRYABLE = ("failed", "timeout")
ABANDONED_AFTER = timedelta(hours=12)
# Request retries: 5 s, 10 s, 20 s (Adha's schedule) with ±20 % so an outage's backlog spreads out.
RETRY_CAP_S = 3600.0


@dataclass(frozen=True)
class Claim:
    request_id: int
    token: str
    attempt: int


def request_key(kind: str, business_id: int, prompt_hash: str, refresh: str | None = None) -> str:
    return f"{kind}:{business_id}:{prompt_hash}" + (f":{refresh}" if refresh else "")


def open_request(engine: Engine, *, account_id: int, business_id: int, kind: str, prompt_hash: str, model: str,
                 template_version: str, estimate: int, import_id: int | None,
                 refresh: str | None = None) -> dict[str, Any]:
    """The request of this business, kind and prompt (and regeneration date): created once, whatever the
    number of runs asking."""
    key = request_key(kind, business_id, prompt_hash, refresh)
    with write_transaction(engine) as conn:
        conn.execute(dialect_insert(conn, ai_requests).values(
            account_id=account_id, business_id=business_id, kind=kind, idempotency_key=key, prompt_hash=prompt_hash,
            model=model, template_version=template_version, estimate_tokens=estimate, import_id=import_id,
        ).on_conflict_do_nothing(index_elements=["idempotency_key"]))
        return dict(conn.execute(sa.select(ai_requests).where(ai_requests.c.idempotency_key == key)).mappings().one())


def claim(engine: Engine, request_id: int, *, lease_seconds: int, max_attempts: int,
          now: datetime | None = None) -> Claim | None:
    """Take a pending request, or a temporarily failed one that is due, for one attempt; None when another
    worker holds it, it is finished, or it has used its attempts."""
    now = now or datetime.now(UTC)
    token = str(uuid.uuid4())
    claimable = sa.or_(ai_requests.c.status == "pending",
                       sa.and_(ai_requests.c.status.in_(RETRYABLE), ai_requests.c.next_attempt_at.is_not(None),
                               ai_requests.c.next_attempt_at <= now))
    with write_transaction(engine) as conn:
        attempt = conn.execute(
            sa.update(ai_requests)
            .where(ai_requests.c.id == request_id, claimable, ai_requests.c.attempts < max_attempts)
            .values(status="processing", claim_token=token, lease_until=now + timedelta(seconds=lease_seconds),
                    attempts=ai_requests.c.attempts + 1, wait_reason=None, next_attempt_at=None,
                    call_started_at=None, updated_at=now)
            .returning(ai_requests.c.attempts)
        ).scalar_one_or_none()
    return None if attempt is None else Claim(request_id, token, attempt)


def _claimed(claim_: Claim):
    return sa.and_(ai_requests.c.id == claim_.request_id, ai_requests.c.claim_token == claim_.token)


def record(engine: Engine, claim_: Claim, **values: Any) -> bool:
    """Note progress of a claimed request (its hold, the call's start); False when the claim was lost."""
    with write_transaction(engine) as conn:
        return conn.execute(sa.update(ai_requests).where(_claimed(claim_))
                            .values(updated_at=datetime.now(UTC), **values)
                            .returning(ai_requests.c.id)).first() is not None


def complete(engine: Engine, claim_: Claim, *, business_id: int, kind: str, text: str, model: str, tokens: int,
             estimated: bool, latency_ms: int | None, template_version: str, prompt_hash: str) -> bool:
    """The request completed and its content stored, in one transaction; False when the claim was lost."""
    now = datetime.now(UTC)
    with write_transaction(engine) as conn:
        done = conn.execute(sa.update(ai_requests).where(_claimed(claim_)).values(
            status="completed", output_text=text, actual_tokens=tokens, usage_estimated=estimated, model=model,
            latency_ms=latency_ms, claim_token=None, lease_until=None, reservation_id=None, call_started_at=None,
            error_code=None, error_text=None, completed_at=now, updated_at=now,
        ).returning(ai_requests.c.id)).first()
        if done is None:
            return False
        store_content(conn, business_id=business_id, kind=kind, text=text, model=model, prompt_hash=prompt_hash,
                      template_version=template_version, request_id=claim_.request_id, now=now)
    return True


def store_content(conn, *, business_id: int, kind: str, text: str, model: str, prompt_hash: str,
                  template_version: str, request_id: int, now: datetime) -> None:
    values = {"text": text, "model": model, "prompt_hash": prompt_hash, "template_version": template_version,
              "request_id": request_id, "updated_at": now}
    conn.execute(dialect_insert(conn, ai_contents).values(business_id=business_id, kind=kind, **values)
                 .on_conflict_do_update(index_elements=["business_id", "kind"], set_=values))


def retry_at(attempt: int, base_seconds: float, now: datetime) -> datetime:
    return now + timedelta(seconds=exponential_delay(attempt, base=base_seconds, cap=RETRY_CAP_S,
                                                     jitter="plus_minus"))


def fail(engine: Engine, claim_: Claim, *, code: str, text: str, temporary: bool, max_attempts: int,
         base_seconds: float, status: str = "failed") -> str:
    """End an attempt that produced no content: due again later when temporary and attempts remain."""
    now = datetime.now(UTC)
    again = retry_at(claim_.attempt, base_seconds, now) if temporary and claim_.attempt < max_attempts else None
    record(engine, claim_, status=status, error_code=code[:60], error_text=text[:2000], next_attempt_at=again,
           claim_token=None, lease_until=None, reservation_id=None, call_started_at=None)
    return "retry" if again else "dead"


def wait_for_quota(engine: Engine, claim_: Claim, *, recheck_seconds: int, reason: str) -> None:
    """Back to pending, waiting for tokens: the attempt is given back (nothing was called)."""
    now = datetime.now(UTC)
    record(engine, claim_, status="pending", wait_reason="quota", error_code="insufficient_tokens",
           error_text=reason[:2000], next_attempt_at=now + timedelta(seconds=recheck_seconds),
           attempts=ai_requests.c.attempts - 1, claim_token=None, lease_until=None, reservation_id=None)


def cached_output(engine: Engine, prompt_hash: str) -> dict[str, Any] | None:
    """A completed request with this prompt: its validated text serves again without a call."""
    with read_transaction(engine) as conn:
        row = conn.execute(
            sa.select(ai_requests.c.id, ai_requests.c.output_text, ai_requests.c.model)
            .where(ai_requests.c.prompt_hash == prompt_hash, ai_requests.c.status == "completed",
                   ai_requests.c.output_text.is_not(None))
            .order_by(ai_requests.c.id.desc()).limit(1)).mappings().first()
    return dict(row) if row else None


@dataclass(frozen=True)
class Abandoned:
    request_id: int
    token: str
    attempts: int
    reservation_id: int | None
    call_started: bool


def take_abandoned(engine: Engine, now: datetime | None = None) -> list[Abandoned]:
    """Processing requests whose lease ran out (or older than 12 h), taken over with a new token: the old
    worker, if alive, can no longer change them."""
    now = now or datetime.now(UTC)
    taken = []
    with write_transaction(engine) as conn:
        rows = conn.execute(sa.select(ai_requests.c.id, ai_requests.c.claim_token).where(
            ai_requests.c.status == "processing",
            sa.or_(ai_requests.c.lease_until < now, ai_requests.c.created_at < now - ABANDONED_AFTER))).all()
        for row in rows:
            token = str(uuid.uuid4())
            held = conn.execute(
                sa.update(ai_requests)
                .where(ai_requests.c.id == row.id, ai_requests.c.status == "processing",
                       ai_requests.c.claim_token.is_not_distinct_from(row.claim_token))
                .values(claim_token=token, updated_at=now)
                .returning(ai_requests.c.attempts, ai_requests.c.reservation_id, ai_requests.c.call_started_at)
            ).first()
            if held is not None:
                taken.append(Abandoned(row.id, token, held.attempts, held.reservation_id,
                                       held.call_started_at is not None))
    return taken


def time_out(engine: Engine, abandoned: Abandoned, *, max_attempts: int, base_seconds: float, note: str) -> str:
    claim_ = Claim(abandoned.request_id, abandoned.token, abandoned.attempts)
    return fail(engine, claim_, code="abandoned", text=note, temporary=True, max_attempts=max_attempts,
                base_seconds=base_seconds, status="timeout")


def due_requests(engine: Engine, *, max_attempts: int, now: datetime | None = None, limit: int = 500
                 ) -> list[dict[str, Any]]:
    """Requests a run may take now: waiting for quota or temporarily failed, and due."""
    now = now or datetime.now(UTC)
    query = (sa.select(ai_requests.c.id, ai_requests.c.business_id, ai_requests.c.kind, ai_requests.c.status,
                       ai_requests.c.wait_reason, ai_requests.c.prompt_hash, ai_requests.c.updated_at)
             .where(sa.or_(sa.and_(ai_requests.c.status == "pending", ai_requests.c.wait_reason == "quota"),
                           ai_requests.c.status.in_(RETRYABLE)),
                    ai_requests.c.next_attempt_at.is_not(None), ai_requests.c.next_attempt_at <= now,
                    ai_requests.c.attempts < max_attempts, ai_requests.c.business_id.is_not(None))
             .order_by(ai_requests.c.next_attempt_at).limit(limit))
    with read_transaction(engine) as conn:
        return [dict(row) for row in conn.execute(query).mappings()]


def lease_expired(engine: Engine, now: datetime | None = None, limit: int = 500) -> list[tuple[int, str]]:
    """(id, claim token) of processing requests whose lease ran out: the reaper's next work."""
    now = now or datetime.now(UTC)
    with read_transaction(engine) as conn:
        rows = conn.execute(sa.select(ai_requests.c.id, ai_requests.c.claim_token).where(
            ai_requests.c.status == "processing", ai_requests.c.lease_until < now)
            .order_by(ai_requests.c.id).limit(limit))
        return [(row.id, row.claim_token) for row in rows]


def close_superseded(engine: Engine, request_id: int) -> None:
    """A due request whose business changed since: a newer request takes over, this one is not retried."""
    with write_transaction(engine) as conn:
        conn.execute(sa.update(ai_requests).where(ai_requests.c.id == request_id, ai_requests.c.status != "processing")
                     .values(status="failed", error_code="superseded", next_attempt_at=None, wait_reason=None,
                             updated_at=datetime.now(UTC)))


def dead_letters(engine: Engine, limit: int = 20) -> list[dict[str, Any]]:
    """Failed requests that will not be tried again (permanent failures, attempts used)."""
    with read_transaction(engine) as conn:
        rows = conn.execute(sa.select(ai_requests.c.id, ai_requests.c.business_id, ai_requests.c.kind,
                                      ai_requests.c.attempts, ai_requests.c.error_code)
                            .where(ai_requests.c.status.in_(RETRYABLE), ai_requests.c.next_attempt_at.is_(None),
                                   ai_requests.c.error_code != "superseded")
                            .order_by(ai_requests.c.id.desc()).limit(limit)).mappings()
        return [dict(row) for row in rows]
