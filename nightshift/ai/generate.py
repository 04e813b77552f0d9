"""Generation of AI content for businesses: plan (skip what is unchanged before any reservation), then per
content kind reserve → call → validate → store → settle, metered by the token ledger.

Ledger keys are per (request, attempt, ask): a re-run of the same work finds the same request (keyed by
business, kind and prompt) already completed, or claims it for a new attempt; it never charges an attempt
twice. No database transaction is open during a call.

A business is charged to its account, else to the account of the import that last wrote it, else to
`ai.default_account` (by default `demo`, the local demo account `nightshift init` creates on a machine
without accounts); with none of these it is skipped (counted as `skipped_no_account`): nothing is ever
generated unmetered.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from nightshift.ai import states
from nightshift.ai import validate as validators
from nightshift.ai.client import ChatRequest, Completion, ProviderError
from nightshift.ai.limiter import book_start, pause_until
from nightshift.ai.prompts import (
    MAX_COMPLETION_TOKENS,
    PromptTemplate,
    business_inputs,
    cache_key,
    estimate_prompt_tokens,
    template_for,
)
from nightshift.config import AISettings
from nightshift.db.engine import read_transaction, utc, write_transaction
from nightshift.db.schema import accounts, ai_contents, ai_requests, businesses, categories, imports, subcategories
from nightshift.quotas import InsufficientTokens, QuotaError, TokenLedger

# The import log's statuses of an import that wrote rows (the others wrote none).
IMPORTED = ("succeeded", "partial")
# The import profile whose rows the texts describe (the imports' `businesses`): a clients file gets none.
CONTENT_PROFILES = ("businesses",)


class Provider(Protocol):
    model: str

    def complete(self, request: ChatRequest) -> Completion: ...


@dataclass
class GenerationSummary:
    requested: int = 0
    generated: int = 0
    cached: int = 0
    skipped_unchanged: int = 0
    skipped_no_account: int = 0
    default_account_texts: int = 0  # planned texts of businesses without an account, charged to ai.default_account
    rejected: int = 0  # requests whose every ask failed validation
    rejected_asks: int = 0
    waiting_quota: int = 0
    failed: int = 0
    retry_scheduled: int = 0
    deferred_budget: int = 0
    busy_elsewhere: int = 0
    timed_out: int = 0
    tokens_estimated: int = 0  # dry run: what the planned generations would hold
    tokens_reserved: int = 0
    tokens_settled: int = 0
    tokens_settled_estimated: int = 0
    latencies_ms: list[int] = field(default_factory=list)

    def estimated_token_share(self) -> float:
        return round(self.tokens_settled_estimated / self.tokens_settled, 4) if self.tokens_settled else 0.0

    def counts(self) -> dict[str, Any]:
        """The CLI's and the metadata's figures (stable keys)."""
        latencies = sorted(self.latencies_ms)
        return {
            "requested": self.requested, "generated": self.generated, "cached": self.cached,
            "skipped_unchanged": self.skipped_unchanged, "skipped_no_account": self.skipped_no_account,
            "default_account_texts": self.default_account_texts,
            "rejected": self.rejected, "rejected_asks": self.rejected_asks, "waiting_quota": self.waiting_quota,
            "failed": self.failed, "retry_scheduled": self.retry_scheduled, "deferred_budget": self.deferred_budget,
            "busy_elsewhere": self.busy_elsewhere, "timed_out": self.timed_out,
            "tokens_estimated": self.tokens_estimated, "tokens_reserved": self.tokens_reserved,
            "tokens_settled": self.tokens_settled,
            "estimated_token_share": self.estimated_token_share(),
            "latency_p50_ms": float(statistics.median(latencies)) if latencies else 0.0,
            "latency_p95_ms": float(latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))])
            if latencies else 0.0,
        }


@dataclass(frozen=True)
class Work:
    """One content kind of one business to generate."""

    business_id: int
    account_id: int
    account: str
    kind: str
    template: PromptTemplate
    inputs: dict[str, str]
    messages: list[dict[str, str]]
    prompt_hash: str
    estimate: int
    import_id: int | None
    refresh: str | None = None  # a regeneration (its date): asked anew, whatever is stored or cached


# The account charged: the business's own, else that of the import that last wrote it (an upload to
# uploads/<account>/… or `nightshift import --account`), else ai.default_account (see Generator.plan).
_ACCOUNT_ID = sa.func.coalesce(businesses.c.account_id, imports.c.account_id)
_BUSINESS_COLUMNS = [businesses.c.id, businesses.c.name, businesses.c.trade_name, businesses.c.naf_label,
                     businesses.c.city, businesses.c.postal_code, businesses.c.description,
                     _ACCOUNT_ID.label("account_id"), businesses.c.import_id, categories.c.name.label("category"),
                     subcategories.c.name.label("subcategory"), accounts.c.slug.label("account")]


def _businesses(engine: Engine, where) -> list[dict[str, Any]]:
    query = (sa.select(*_BUSINESS_COLUMNS)
             .select_from(businesses.outerjoin(categories, categories.c.id == businesses.c.category_id)
                          .outerjoin(subcategories, subcategories.c.id == businesses.c.subcategory_id)
                          .outerjoin(imports, imports.c.id == businesses.c.import_id)
                          .outerjoin(accounts, accounts.c.id == _ACCOUNT_ID))
             .where(where).order_by(businesses.c.id))
    with read_transaction(engine) as conn:
        return [dict(row) for row in conn.execute(query).mappings()]


def businesses_of_import(engine: Engine, import_id: int) -> list[dict[str, Any]]:
    """The businesses this import inserted or changed: the merge rewrites (and stamps) only those."""
    return _businesses(engine, businesses.c.import_id == import_id)


def businesses_by_id(engine: Engine, ids: list[int]) -> list[dict[str, Any]]:
    return _businesses(engine, businesses.c.id.in_(ids))


def stale_businesses(engine: Engine, settings: AISettings, lang: str, now: datetime | None = None
                     ) -> list[dict[str, Any]]:
    """Businesses with content older than ai.regenerate_after_days or made from an older template version."""
    now = now or datetime.now(UTC)
    older = now - timedelta(days=settings.regenerate_after_days)
    conditions = [ai_contents.c.updated_at < older]
    for kind in settings.kinds:
        current = template_for(kind, lang).version
        conditions.append(sa.and_(ai_contents.c.kind == kind,
                                  ai_contents.c.template_version.is_distinct_from(current)))
    stale = sa.select(ai_contents.c.business_id).where(ai_contents.c.kind.in_(settings.kinds), sa.or_(*conditions))
    return _businesses(engine, businesses.c.id.in_(stale))


class Generator:
    def __init__(self, engine: Engine, settings: AISettings, lang: str, provider: Provider, ledger: TokenLedger,
                 *, rate_limit_name: str | None, sleep: Callable[[float], None] = time.sleep,
                 log: Callable[[str], None] = lambda _message: None):
        self.engine, self.settings, self.lang, self.provider, self.ledger = engine, settings, lang, provider, ledger
        self.rate_limit_name, self.sleep, self.log = rate_limit_name, sleep, log

    # -- planning --------------------------------------------------------------------------------------

    def plan(self, rows: list[dict[str, Any]], kinds: list[str] | None, summary: GenerationSummary,
             *, refresh: str | None = None) -> list[Work]:
        """The work these businesses need; unchanged contents (same prompt hash) are counted and dropped.
        With `refresh` (the date of a regeneration) the stored content and the cache are passed over: the
        texts are asked anew under a request of that date, their prompt hash unchanged."""
        kinds = kinds or self.settings.kinds
        default_account = self._default_account()
        existing = self._content_hashes([row["id"] for row in rows])
        work = []
        for row in rows:
            account_id, account = row["account_id"], row["account"]
            charged_by_default = account_id is None
            if charged_by_default:
                if default_account is None:
                    summary.skipped_no_account += len(kinds)
                    continue
                account_id, account = default_account
            inputs = business_inputs(row, self.settings.context_chars)
            for kind in kinds:
                template = template_for(kind, self.lang)
                messages = template.messages(inputs)
                params = {"max_tokens": MAX_COMPLETION_TOKENS[kind], "temperature": self.settings.temperature}
                prompt_hash = cache_key(self.provider.model, template, inputs, params)
                if refresh is None and existing.get((row["id"], kind)) == prompt_hash:
                    summary.skipped_unchanged += 1
                    continue
                estimate = estimate_prompt_tokens(messages) + MAX_COMPLETION_TOKENS[kind]
                work.append(Work(row["id"], account_id, account, kind, template, inputs, messages, prompt_hash,
                                 estimate, row["import_id"], refresh))
                summary.default_account_texts += charged_by_default
        summary.requested += len(work)
        return work

    def _default_account(self) -> tuple[int, str] | None:
        slug = self.settings.default_account.strip()
        if not slug:
            return None
        with read_transaction(self.engine) as conn:
            account_id = conn.execute(sa.select(accounts.c.id).where(accounts.c.slug == slug)).scalar_one_or_none()
        if account_id is None:
            self.log(f"ai.default_account {slug!r} is not an account: businesses without one are skipped")
            return None
        return account_id, slug

    def _content_hashes(self, business_ids: list[int]) -> dict[tuple[int, str], str]:
        if not business_ids:
            return {}
        with read_transaction(self.engine) as conn:
            rows = conn.execute(sa.select(ai_contents.c.business_id, ai_contents.c.kind, ai_contents.c.prompt_hash)
                                .where(ai_contents.c.business_id.in_(business_ids)))
            return {(row.business_id, row.kind): row.prompt_hash for row in rows}

    # -- running ---------------------------------------------------------------------------------------

    def reap(self, summary: GenerationSummary) -> None:
        """Abandoned requests become timeout; each one's hold is ended once: settled at the hold when the
        call had started (it may have been billed, flagged estimated), else released."""
        for abandoned in states.take_abandoned(self.engine):
            ending = "no hold"
            if abandoned.reservation_id is not None:
                try:
                    if abandoned.call_started:
                        ended = self.ledger.settle(abandoned.reservation_id, None)
                    else:
                        ended = self.ledger.release(abandoned.reservation_id)
                    ending = f"hold {ended.kind} ({ended.tokens} tokens{', estimated' if ended.estimated else ''})"
                except QuotaError as exc:  # the quotas' expiry sweep ended it first
                    ending = f"hold already ended: {exc}"
            states.time_out(self.engine, abandoned, max_attempts=self.settings.max_attempts,
                                  base_seconds=self.settings.attempt_base_seconds,
                                  note=f"lease ran out; {ending}")
            summary.timed_out += 1
            self.log(f"request {abandoned.request_id}: abandoned, timed out; {ending}")

    def run(self, work: list[Work], summary: GenerationSummary, *, token_budget: int | None = None,
            dry_run: bool = False) -> GenerationSummary:
        for item in work:
            if dry_run:
                summary.tokens_estimated += item.estimate
                continue
            if token_budget is not None and summary.tokens_reserved + item.estimate > token_budget:
                summary.deferred_budget += 1
                continue
            self._generate(item, summary)
        return summary

    def _generate(self, item: Work, summary: GenerationSummary) -> None:
        request = states.open_request(
            self.engine, account_id=item.account_id, business_id=item.business_id, kind=item.kind,
            prompt_hash=item.prompt_hash, model=self.provider.model, template_version=item.template.version,
            estimate=item.estimate, import_id=item.import_id, refresh=item.refresh)
        if request["status"] == "completed" or (
                item.refresh is None and (cached := states.cached_output(self.engine, item.prompt_hash))):
            source = request if request["status"] == "completed" else cached
            with write_transaction(self.engine) as conn:
                states.store_content(conn, business_id=item.business_id, kind=item.kind,
                                           text=source["output_text"], model=source["model"] or self.provider.model,
                                           prompt_hash=item.prompt_hash, template_version=item.template.version,
                                           request_id=source["id"], now=datetime.now(UTC))
            summary.cached += 1
            return
        claim = states.claim(self.engine, request["id"], lease_seconds=self.settings.lease_seconds,
                                   max_attempts=self.settings.max_attempts)
        if claim is None:
            if request["status"] in states.OPEN:
                summary.busy_elsewhere += 1
            else:
                summary.failed += 1
            return
        messages = list(item.messages)
        for ask in range(self.settings.max_reasks + 1):
            outcome = self._ask(item, claim, ask, messages, summary)
            if outcome is None:
                return
            verdict = validators.validate(item.kind, outcome.text, self.settings.forbidden_phrases)
            if verdict.ok:
                if states.complete(self.engine, claim, business_id=item.business_id, kind=item.kind,
                                         text=verdict.text, model=outcome.model, tokens=outcome.total_tokens,
                                         estimated=outcome.usage_estimated, latency_ms=outcome.latency_ms,
                                         template_version=item.template.version, prompt_hash=item.prompt_hash):
                    summary.generated += 1
                else:
                    summary.busy_elsewhere += 1
                return
            summary.rejected_asks += 1
            states.record(self.engine, claim, reservation_id=None, call_started_at=None)
            reasons = "; ".join(verdict.reasons)
            self.log(f"request {claim.request_id} ({item.kind}) ask {ask + 1} rejected: {reasons}")
            messages = [*messages, {"role": "assistant", "content": outcome.text},
                        {"role": "user", "content": f"Cette réponse ne respecte pas les consignes ({reasons}). "
                                                    "Réécris-la en les respectant."}]
        states.fail(self.engine, claim, code="rejected", text=reasons, temporary=False,
                          max_attempts=self.settings.max_attempts, base_seconds=self.settings.attempt_base_seconds)
        summary.rejected += 1

    def _ask(self, item: Work, claim: states.Claim, ask: int, messages: list[dict[str, str]],
             summary: GenerationSummary) -> Completion | None:
        """One metered call: reserve, call, settle (or release). None when the request stopped here (waiting
        for quota, failed); the completion otherwise, validated by the caller."""
        estimate = estimate_prompt_tokens(messages) + MAX_COMPLETION_TOKENS[item.kind]
        try:
            reservation = self.ledger.reserve(item.account, estimate, f"ai:{claim.request_id}:{claim.attempt}:{ask}",
                                              ttl_seconds=self.settings.lease_seconds, request_id=claim.request_id)
        except InsufficientTokens as exc:
            states.wait_for_quota(self.engine, claim, recheck_seconds=self.settings.quota_recheck_seconds,
                                        reason=str(exc))
            summary.waiting_quota += 1
            return None
        except QuotaError as exc:  # an unknown or deactivated account: nothing to wait for
            self._failed(claim, "quota_refused", str(exc), temporary=False, summary=summary)
            return None
        summary.tokens_reserved += reservation.tokens
        if not states.record(self.engine, claim, reservation_id=reservation.reservation_id):
            self.ledger.release(reservation.reservation_id)
            summary.busy_elsewhere += 1
            return None
        if self.rate_limit_name is not None:
            wait = book_start(self.engine, self.rate_limit_name, requests_per_minute=self.settings.requests_per_minute,
                              tokens_per_minute=self.settings.tokens_per_minute, tokens=estimate)
            if wait > 0:
                self.sleep(wait)
        if not states.record(self.engine, claim, call_started_at=datetime.now(UTC)):
            # The wait outlasted the lease: the reaper took the request over and ended its hold; no call.
            summary.busy_elsewhere += 1
            return None
        chat = ChatRequest(item.kind, messages, MAX_COMPLETION_TOKENS[item.kind], self.settings.temperature,
                           item.inputs, validators.FAQ_SCHEMA if item.kind == "faq" else None)
        try:
            completion = self.provider.complete(chat)
        except ProviderError as exc:
            self._pause(exc.rate_limit_wait_s)
            if exc.billed == "yes":
                ended = self.ledger.settle(reservation.reservation_id, exc.tokens)
            elif exc.billed == "unknown":
                ended = self.ledger.settle(reservation.reservation_id, None)
            else:
                ended = self.ledger.release(reservation.reservation_id)
            if ended.kind == "settle":
                summary.tokens_settled += ended.tokens
                summary.tokens_settled_estimated += ended.tokens if ended.estimated else 0
            self._failed(claim, exc.code, str(exc), temporary=exc.temporary, summary=summary)
            return None
        self._pause(completion.rate_limit_wait_s)
        # The request still names the settled hold until it completes or is asked again: ending it twice
        # (a reaper after a crash here) is a replay in the ledger, never a second charge.
        ended = self.ledger.settle(reservation.reservation_id, completion.total_tokens)
        summary.tokens_settled += ended.tokens
        summary.tokens_settled_estimated += ended.tokens if completion.usage_estimated else 0
        summary.latencies_ms.append(completion.latency_ms)
        return completion

    def _pause(self, seconds: float) -> None:
        """The provider's budget is used up for `seconds`: every process sharing the limiter waits."""
        if seconds > 0 and self.rate_limit_name is not None:
            pause_until(self.engine, self.rate_limit_name, datetime.now(UTC) + timedelta(seconds=seconds))
            self.log(f"the provider's rate limit is used up: no request for {seconds:g} s")

    def _failed(self, claim: states.Claim, code: str, text: str, *, temporary: bool,
                summary: GenerationSummary) -> None:
        outcome = states.fail(self.engine, claim, code=code, text=text, temporary=temporary,
                                    max_attempts=self.settings.max_attempts,
                                    base_seconds=self.settings.attempt_base_seconds)
        if outcome == "retry":
            summary.retry_scheduled += 1
        else:
            summary.failed += 1
        self.log(f"request {claim.request_id}: {text} ({'retried later' if outcome == 'retry' else 'failed'})")


    def retry_due(self, summary: GenerationSummary) -> list[Work]:
        """The work of requests that are due again (waiting for quota, temporarily failed, timed out). A due
        request whose business changed since (another prompt now) is closed as superseded: the new prompt's
        request takes over."""
        due = states.due_requests(self.engine, max_attempts=self.settings.max_attempts)
        work: list[Work] = []
        for kind in sorted({row["kind"] for row in due}):
            of_kind = [row for row in due if row["kind"] == kind]
            work += self.plan(businesses_by_id(self.engine, sorted({row["business_id"] for row in of_kind})), [kind],
                              summary)
        planned = {(item.business_id, item.kind, item.prompt_hash) for item in work}
        for row in due:
            if (row["business_id"], row["kind"], row["prompt_hash"]) not in planned:
                states.close_superseded(self.engine, row["id"])
        return work


def request_rows(engine: Engine, status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    query = (sa.select(ai_requests.c.id, ai_requests.c.business_id, ai_requests.c.kind, ai_requests.c.status,
                       ai_requests.c.wait_reason, ai_requests.c.attempts, ai_requests.c.estimate_tokens,
                       ai_requests.c.actual_tokens, ai_requests.c.usage_estimated, ai_requests.c.model,
                       ai_requests.c.error_code, ai_requests.c.next_attempt_at, ai_requests.c.updated_at)
             .order_by(ai_requests.c.id.desc()).limit(limit))
    if status:
        query = query.where(ai_requests.c.status == status)
    with read_transaction(engine) as conn:
        return [{**row, "next_attempt_at": utc(row["next_attempt_at"]), "updated_at": utc(row["updated_at"])}
                for row in conn.execute(query).mappings()]


def contents_of(engine: Engine, business_id: int) -> list[dict[str, Any]]:
    with read_transaction(engine) as conn:
        rows = conn.execute(sa.select(ai_contents.c.kind, ai_contents.c.text, ai_contents.c.model,
                                      ai_contents.c.template_version, ai_contents.c.request_id,
                                      ai_contents.c.updated_at)
                            .where(ai_contents.c.business_id == business_id).order_by(ai_contents.c.kind))
        return [{**row, "updated_at": utc(row["updated_at"])} for row in rows.mappings()]
