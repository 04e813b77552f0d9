"""The token ledger names the AI request a reservation is for (token_ledger.request_id), on the reserve row and
on the row that ends it (settle, release or expire), on SQLite and PostgreSQL; the AI code passes its request."""

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from nightshift.ai import states
from nightshift.config import QuotaSettings
from nightshift.db.schema import token_ledger
from nightshift.quotas import TokenLedger
from tests.ai.conftest import client_of
from tests.ai.fake_openai import error
from tests.ai.test_ai_generation import add_business, generator, run_import


def request_of(engine, account: int, kind: str) -> int:
    business = add_business(engine, f"Entreprise {kind}", account_id=account)
    return states.open_request(engine, account_id=account, business_id=business, kind="description",
                               prompt_hash=f"prompt-{kind}", model="m", template_version="v1", estimate=100,
                               import_id=1)["id"]


def rows_of(engine, reservation_id: int) -> list[tuple[str, int | None]]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(
            sa.select(token_ledger.c.entry_kind, token_ledger.c.request_id)
            .where(sa.or_(token_ledger.c.id == reservation_id, token_ledger.c.reservation_id == reservation_id))
            .order_by(token_ledger.c.id))]


def test_reserve_records_the_request_and_its_settle_release_and_expiry_carry_it(db, account):
    ledger = TokenLedger(db, QuotaSettings(), UTC)
    settled, released, expired = (request_of(db, account, kind) for kind in ("settle", "release", "expire"))
    hold = ledger.reserve("fox", 100, "settled", request_id=settled)
    ledger.settle(hold.reservation_id, 80)
    assert rows_of(db, hold.reservation_id) == [("reserve", settled), ("settle", settled)]
    hold = ledger.reserve("fox", 100, "released", request_id=released)
    ledger.release(hold.reservation_id)
    assert rows_of(db, hold.reservation_id) == [("reserve", released), ("release", released)]
    hold = ledger.reserve("fox", 100, "expired", ttl_seconds=1, request_id=expired,
                          now=datetime.now(UTC) - timedelta(hours=1))
    assert ledger.expire_holds() == (1, 100)
    assert rows_of(db, hold.reservation_id) == [("reserve", expired), ("expire", expired)]


def test_without_a_request_the_rows_name_none(db, account):
    ledger = TokenLedger(db, QuotaSettings(), UTC)
    hold = ledger.reserve("fox", 100, "manual")
    ledger.settle(hold.reservation_id, None)
    assert rows_of(db, hold.reservation_id) == [("reserve", None), ("settle", None)]


def test_every_reservation_of_a_generation_names_its_ai_request(db, server, account):
    add_business(db, "Dupont", account_id=account)
    server.then(error(400, "invalid_request_error"))  # the description fails (released); the meta completes
    run_import(generator(db, client_of(server)), db)
    with db.connect() as conn:
        rows = conn.execute(sa.select(token_ledger.c.entry_kind, token_ledger.c.request_id,
                                      token_ledger.c.idempotency_key)
                            .where(token_ledger.c.entry_kind != "grant").order_by(token_ledger.c.id)).all()
    assert sorted(row.entry_kind for row in rows) == ["release", "reserve", "reserve", "settle"]
    for row in rows:
        assert row.request_id is not None
        if row.entry_kind == "reserve":
            assert row.idempotency_key.startswith(f"reserve:fox:ai:{row.request_id}:")
