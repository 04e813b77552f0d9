"""A fresh machine, as `make run` prepares it (`nightshift init`), gets AI texts for the samples, which are
imported without an account: init creates the local demo account ai.default_account names, and the texts
(template-v1) are charged to it. On SQLite and PostgreSQL; an install with accounts gets no demo account."""

import json

import sqlalchemy as sa

from nightshift.db.engine import create_engine
from nightshift.db.schema import accounts, ai_contents, ai_requests, businesses, token_ledger
from tests.conftest import PROJECT_ROOT, nightshift


def fresh(cli_env, tmp_path) -> dict[str, str]:
    config = tmp_path / "nightshift.yaml"
    config.write_text("{}\n", encoding="utf-8")  # the defaults, as on a fresh machine
    return {**cli_env, "NIGHTSHIFT_CONFIG": str(config)}


def last_json(result) -> dict:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_init_then_the_samples_get_their_texts_charged_to_the_demo_account(cli_env, db_url, tmp_path):
    env = fresh(cli_env, tmp_path)
    init = nightshift("init", env=env, cwd=tmp_path)
    assert init.returncode == 0, init.stderr
    assert "account 'demo' created: a local demo account with 100,000 tokens a month" in init.stdout
    again = nightshift("init", env=env, cwd=tmp_path)
    assert "ai.default_account 'demo': AI texts of businesses imported without an account are charged to it" in (
        again.stdout)
    imported = last_json(nightshift("import", str(PROJECT_ROOT / "samples" / "entreprises.csv"), "--json", env=env,
                                    cwd=tmp_path))
    generated = nightshift("ai", "generate", "--import", str(imported["import_id"]), env=env, cwd=tmp_path)
    assert generated.returncode == 0, generated.stderr
    assert "charged to ai.default_account 'demo' — the local demo account `nightshift init` creates" in (
        generated.stdout)
    assert "NOT a language model" in generated.stdout
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            business_ids = set(conn.execute(sa.select(businesses.c.id)
                                            .where(businesses.c.import_id == imported["import_id"])).scalars())
            contents = conn.execute(sa.select(ai_contents.c.business_id, ai_contents.c.kind,
                                              ai_contents.c.model)).all()
            charged = set(conn.execute(sa.select(accounts.c.slug).join(ai_requests,
                                                                       ai_requests.c.account_id == accounts.c.id))
                          .scalars())
            settles = conn.execute(sa.select(sa.func.count()).select_from(token_ledger)
                                   .where(token_ledger.c.entry_kind == "settle")).scalar_one()
            [demo] = conn.execute(sa.select(accounts.c.name, accounts.c.monthly_token_quota)
                                  .where(accounts.c.slug == "demo")).all()
    finally:
        engine.dispose()
    assert len(business_ids) == 4  # the sample's five rows, one of them refused (its error report says why)
    assert sorted(contents) == sorted((b, kind, "template-v1") for b in business_ids
                                      for kind in ("description", "meta_description"))
    assert charged == {"demo"} and settles == 2 * len(business_ids)
    assert demo == ("Local demo account (created by nightshift init)", 100_000)


def test_an_install_with_accounts_gets_no_demo_account(cli_env, db_url, tmp_path):
    env = fresh(cli_env, tmp_path)
    assert nightshift("db", "upgrade", env=env, cwd=tmp_path).returncode == 0
    assert nightshift("accounts", "add", "fox", "--quota", "1000", env=env, cwd=tmp_path).returncode == 0
    init = nightshift("init", env=env, cwd=tmp_path)
    assert init.returncode == 0, init.stderr
    assert "ai.default_account 'demo' is not an account" in init.stdout
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            assert set(conn.execute(sa.select(accounts.c.slug)).scalars()) == {"fox"}
    finally:
        engine.dispose()
