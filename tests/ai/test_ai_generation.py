"""Generation on SQLite and PostgreSQL against the local OpenAI-compatible server: every call reserved then
settled (or released) in the token ledger, nothing charged twice, unchanged rows skipped before any
reservation, the cache, re-asks, quota waits and top-ups, abandoned requests, and the shared rate limit."""

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from nightshift.ai import states
from nightshift.ai.client import TemplateGenerator
from nightshift.ai.generate import GenerationSummary, Generator, businesses_of_import
from nightshift.ai.limiter import book_start
from nightshift.config import AISettings, QuotaSettings
from nightshift.db.engine import utc, write_transaction
from nightshift.db.schema import ai_contents, ai_requests, businesses, token_ledger, token_periods
from nightshift.quotas import TokenLedger
from tests.ai.conftest import account_id, client_of
from tests.ai.fake_openai import COMPLETION_TOKENS, PROMPT_TOKENS, error, ok, slow

FAST = {"requests_per_minute": 60_000, "tokens_per_minute": 10_000_000, "attempt_base_seconds": 0.01}


def add_business(engine, name: str, *, import_id: int = 1, account_id: int | None = None, city: str = "Paris") -> int:
    with write_transaction(engine) as conn:
        return conn.execute(businesses.insert().values(
            natural_key=f"key-{name}", name=name, city=city, postal_code="75002", naf_label="Boulangerie",
            phone="+33142600000", email="contact@exemple.fr", content_hash=f"h-{name}-{city}", import_id=import_id,
            account_id=account_id).returning(businesses.c.id)).scalar_one()


def generator(engine, provider, **ai) -> Generator:
    settings = AISettings(**{**FAST, **ai})
    return Generator(engine, settings, "fr", provider, TokenLedger(engine, QuotaSettings(), UTC),
                     rate_limit_name=f"test:{provider.model}")


def run_import(gen: Generator, engine, import_id: int = 1, kinds=None) -> GenerationSummary:
    summary = GenerationSummary()
    gen.reap(summary)
    return gen.run(gen.plan(businesses_of_import(engine, import_id), kinds, summary), summary)


def ledger_rows(engine) -> list:
    with engine.connect() as conn:
        return conn.execute(sa.select(token_ledger.c.entry_kind, token_ledger.c.tokens, token_ledger.c.estimated,
                                      token_ledger.c.idempotency_key)
                            .where(token_ledger.c.entry_kind != "grant").order_by(token_ledger.c.id)).all()


def used(engine) -> tuple[int, int]:
    with engine.connect() as conn:
        return tuple(conn.execute(sa.select(sa.func.sum(token_periods.c.used),
                                            sa.func.sum(token_periods.c.reserved))).one())


def requests(engine) -> list:
    with engine.connect() as conn:
        return conn.execute(sa.select(ai_requests).order_by(ai_requests.c.id)).all()


def test_each_kind_is_reserved_called_validated_stored_and_settled_at_its_usage(db, server, account):
    first, second = add_business(db, "Dupont", account_id=account), add_business(db, "Martin", account_id=account)
    summary = run_import(generator(db, client_of(server)), db)
    assert (summary.requested, summary.generated, summary.failed) == (4, 4, 0)
    assert len(server.requests) == 4
    with db.connect() as conn:
        contents = conn.execute(sa.select(ai_contents.c.business_id, ai_contents.c.kind, ai_contents.c.model,
                                          ai_contents.c.template_version)).all()
    assert sorted(contents) == sorted((b, k, "test-model", "v1") for b in (first, second)
                                      for k in ("description", "meta_description"))
    kinds = [row.entry_kind for row in ledger_rows(db)]
    assert kinds == ["reserve", "settle"] * 4
    assert used(db) == (4 * (PROMPT_TOKENS + COMPLETION_TOKENS), 0)
    assert summary.tokens_settled == 4 * (PROMPT_TOKENS + COMPLETION_TOKENS) and summary.estimated_token_share() == 0
    assert all(row.status == "completed" and not row.usage_estimated for row in requests(db))


def test_running_again_skips_unchanged_rows_before_any_reservation(db, server, account):
    add_business(db, "Dupont", account_id=account)
    run_import(generator(db, client_of(server)), db)
    calls, ledger = len(server.requests), ledger_rows(db)
    again = run_import(generator(db, client_of(server)), db)
    assert (again.skipped_unchanged, again.requested, again.generated) == (2, 0, 0)
    assert len(server.requests) == calls and ledger_rows(db) == ledger


def test_a_changed_row_is_generated_again_and_only_it(db, server, account):
    changed = add_business(db, "Dupont", account_id=account)
    add_business(db, "Martin", account_id=account)
    run_import(generator(db, client_of(server)), db)
    with write_transaction(db) as conn:
        conn.execute(businesses.update().where(businesses.c.id == changed).values(city="Lyon", import_id=2))
    summary = run_import(generator(db, client_of(server)), db, import_id=2)
    assert (summary.requested, summary.generated) == (2, 2)
    assert len(server.requests) == 6


def test_a_cache_hit_neither_calls_nor_charges(db, server, account):
    business = add_business(db, "Dupont", account_id=account)
    run_import(generator(db, client_of(server)), db)
    with write_transaction(db) as conn:  # Lyon, then back to Paris: the Paris texts are in the cache
        conn.execute(businesses.update().where(businesses.c.id == business).values(city="Lyon"))
    run_import(generator(db, client_of(server)), db)
    calls, ledger = len(server.requests), ledger_rows(db)
    with write_transaction(db) as conn:
        conn.execute(businesses.update().where(businesses.c.id == business).values(city="Paris"))
    summary = run_import(generator(db, client_of(server)), db)
    assert (summary.cached, summary.generated) == (2, 0)
    assert len(server.requests) == calls and ledger_rows(db) == ledger


def test_missing_usage_is_estimated_and_flagged(db, server, account):
    add_business(db, "Dupont", account_id=account)
    server.then(ok(usage=False), ok(usage=False))
    summary = run_import(generator(db, client_of(server)), db)
    assert summary.generated == 2 and summary.estimated_token_share() == 1.0
    assert all(row.usage_estimated for row in requests(db))


def test_placeholder_output_is_asked_again_each_ask_metered_then_rejected(db, server, account):
    add_business(db, "Dupont", account_id=account)
    placeholder = "Bienvenue chez [Nom], la boulangerie de votre quartier, ouverte chaque matin de la semaine."
    server.then(ok(placeholder), ok())  # description: rejected once, then good
    summary = run_import(generator(db, client_of(server)), db, kinds=["description"])
    assert (summary.generated, summary.rejected_asks) == (1, 1)
    assert [row.entry_kind for row in ledger_rows(db)] == ["reserve", "settle"] * 2
    assert "ne respecte pas" in server.requests[1]["messages"][-1]["content"]
    add_business(db, "Martin", account_id=account, import_id=3)
    server.then(ok(placeholder), ok(placeholder), ok(placeholder))
    rejected = run_import(generator(db, client_of(server)), db, import_id=3, kinds=["description"])
    assert (rejected.rejected, rejected.rejected_asks, rejected.generated) == (1, 3, 0)
    last = requests(db)[-1]
    assert (last.status, last.error_code, last.next_attempt_at) == ("failed", "rejected", None)
    assert [row.entry_kind for row in ledger_rows(db)].count("settle") == 5


def test_invalid_faq_json_is_rejected_and_asked_again(db, server, account):
    add_business(db, "Dupont", account_id=account)
    server.then(ok('{"faq": [{"question": "Où ?"'), ok())
    summary = run_import(generator(db, client_of(server), kinds=["faq"]), db)
    assert (summary.generated, summary.rejected_asks) == (1, 1)


def test_without_enough_quota_requests_wait_uncalled_and_a_top_up_resumes_them(db, server):
    account = account_id(db, "small", 100)
    add_business(db, "Dupont", account_id=account)
    gen = generator(db, client_of(server))
    summary = run_import(gen, db)
    assert (summary.waiting_quota, summary.generated, len(server.requests)) == (2, 0, 0)
    assert {(row.status, row.wait_reason, row.attempts) for row in requests(db)} == {("pending", "quota", 0)}
    assert ledger_rows(db) == []  # nothing held
    TokenLedger(db, QuotaSettings(), UTC).grant("small", 100_000, "top-up")
    with write_transaction(db) as conn:  # the recheck delay has passed
        conn.execute(ai_requests.update().values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1)))
    resumed = GenerationSummary()
    gen.run(gen.retry_due(resumed), resumed)
    assert (resumed.generated, len(server.requests)) == (2, 2)


def test_a_read_timeout_settles_at_the_hold_flagged_and_retries_later(db, server, account):
    add_business(db, "Dupont", account_id=account)
    server.then(slow(3))
    summary = run_import(generator(db, client_of(server, timeout_s=0.5)), db, kinds=["description"])
    assert (summary.retry_scheduled, summary.generated) == (1, 0)
    reserve, settle = ledger_rows(db)
    assert (settle.entry_kind, settle.tokens, settle.estimated) == ("settle", reserve.tokens, True)
    [row] = requests(db)
    assert (row.status, row.error_code, row.attempts) == ("failed", "timeout", 1) and row.next_attempt_at


def test_insufficient_quota_at_the_provider_releases_the_hold_and_fails_for_good(db, server, account):
    add_business(db, "Dupont", account_id=account)
    server.then(error(429, "insufficient_quota"))
    summary = run_import(generator(db, client_of(server)), db, kinds=["description"])
    assert summary.failed == 1 and len(server.requests) == 1
    assert [row.entry_kind for row in ledger_rows(db)] == ["reserve", "release"]
    [row] = requests(db)
    assert (row.status, row.error_code, row.next_attempt_at) == ("failed", "insufficient_quota", None)


def test_finish_reason_length_is_charged_its_usage_and_fails(db, server, account):
    add_business(db, "Dupont", account_id=account)
    server.then(ok("La Boulangerie Dupont", finish_reason="length"))
    summary = run_import(generator(db, client_of(server)), db, kinds=["description"])
    assert summary.failed == 1
    assert [(r.entry_kind, r.tokens) for r in ledger_rows(db)][-1] == ("settle", PROMPT_TOKENS + COMPLETION_TOKENS)


def test_a_temporary_failure_is_retried_up_to_max_attempts_then_stays_failed(db, server, account):
    add_business(db, "Dupont", account_id=account)
    server.then(*[error(500)] * 9)
    gen = generator(db, client_of(server, http_retries=2), max_attempts=3)
    run_import(gen, db, kinds=["description"])
    for _ in range(3):
        with write_transaction(db) as conn:
            conn.execute(ai_requests.update().where(ai_requests.c.next_attempt_at.is_not(None))
                         .values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1)))
        summary = GenerationSummary()
        gen.run(gen.retry_due(summary), summary)
    [row] = requests(db)
    assert (row.status, row.attempts, row.next_attempt_at) == ("failed", 3, None)
    assert len(server.requests) == 9
    assert [r["id"] for r in states.dead_letters(db)] == [row.id]


def test_an_abandoned_request_times_out_and_its_hold_ends_exactly_once(db, server, account):
    business = add_business(db, "Dupont", account_id=account)
    ledger = TokenLedger(db, QuotaSettings(), UTC)
    for kind, started in (("description", True), ("meta_description", False)):
        request = states.open_request(db, account_id=account, business_id=business, kind=kind, prompt_hash=kind * 2,
                                      model="m", template_version="v1", estimate=500, import_id=1)
        claim = states.claim(db, request["id"], lease_seconds=1, max_attempts=3,
                             now=datetime.now(UTC) - timedelta(seconds=10))
        hold = ledger.reserve("fox", 500, f"ai:{claim.request_id}:{claim.attempt}:0")
        states.record(db, claim, reservation_id=hold.reservation_id,
                      **({"call_started_at": datetime.now(UTC)} if started else {}))
    gen = generator(db, client_of(server))
    summary = GenerationSummary()
    gen.reap(summary)
    gen.reap(summary)
    assert summary.timed_out == 2
    endings = [(r.entry_kind, r.tokens, r.estimated) for r in ledger_rows(db) if r.entry_kind != "reserve"]
    assert sorted(endings) == [("release", 500, False), ("settle", 500, True)]
    assert used(db) == (500, 0)
    assert {(r.status, r.error_code) for r in requests(db)} == {("timeout", "abandoned")}
    assert all(r.next_attempt_at is not None and r.claim_token is None for r in requests(db))


def test_a_lost_claim_changes_nothing(db, account):
    business = add_business(db, "Dupont", account_id=account)
    request = states.open_request(db, account_id=account, business_id=business, kind="description",
                                  prompt_hash="p", model="m", template_version="v1", estimate=10, import_id=1)
    claim = states.claim(db, request["id"], lease_seconds=60, max_attempts=3)
    assert states.claim(db, request["id"], lease_seconds=60, max_attempts=3) is None
    stale = states.Claim(claim.request_id, "another-token", claim.attempt)
    assert not states.complete(db, stale, business_id=business, kind="description", text="x", model="m", tokens=1,
                               estimated=False, latency_ms=1, template_version="v1", prompt_hash="p")
    assert requests(db)[0].status == "processing"


def test_businesses_without_an_account_are_skipped_or_charged_to_the_default_account(db, server, account):
    add_business(db, "Dupont")
    skipped = run_import(generator(db, client_of(server)), db)
    assert (skipped.skipped_no_account, skipped.requested, len(server.requests)) == (2, 0, 0)
    charged = run_import(generator(db, client_of(server), default_account="fox"), db)
    assert charged.generated == 2
    assert {row.account_id for row in requests(db)} == {account}


def test_the_template_generator_runs_the_whole_pipeline_offline(db, account):
    add_business(db, "Dupont", account_id=account)
    summary = run_import(generator(db, TemplateGenerator()), db)
    assert summary.generated == 2 and summary.estimated_token_share() == 1.0
    assert {row.model for row in requests(db)} == {"template-v1"}


def test_the_rate_limit_spaces_requests_for_every_process_sharing_the_database(db):
    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    waits = [book_start(db, "p:m", requests_per_minute=6, tokens_per_minute=1_000_000, tokens=10, now=now)
             for _ in range(4)]
    assert waits == [0, 10, 20, 30]
    heavy = [book_start(db, "p:heavy", requests_per_minute=6_000, tokens_per_minute=1_000, tokens=500, now=now)
             for _ in range(4)]
    # A minute's worth of tokens at once (0.01 s apart: the request spacing), then paced by the tokens.
    assert heavy == [0, 0.01, 30, 60]


def test_a_completed_request_records_its_latency_and_the_content_links_it(db, server, account):
    business = add_business(db, "Dupont", account_id=account)
    run_import(generator(db, client_of(server)), db, kinds=["description"])
    [row] = requests(db)
    with db.connect() as conn:
        content = conn.execute(sa.select(ai_contents).where(ai_contents.c.business_id == business)).one()
    assert content.request_id == row.id and content.prompt_hash == row.prompt_hash and row.latency_ms >= 0
    assert utc(row.completed_at) <= datetime.now(UTC)
