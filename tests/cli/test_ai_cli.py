"""`nightshift ai …` as scripts run it (the console script in a subprocess) on SQLite and PostgreSQL: the
generate summary (JSON keys of the issue), dry runs that call and reserve nothing, requests and show."""

import json

import pytest
import sqlalchemy as sa

from nightshift.db import migrate
from nightshift.db.engine import create_engine
from nightshift.db.schema import token_ledger
from tests.conftest import nightshift

CSV = ("siren;nom;code_postal;ville_nom;naf_libelle\n"
       "732829320;Boulangerie Dupont;75002;Paris;Boulangerie et boulangerie-pâtisserie\n"
       "552100554;Garage Martin;01000;Bourg-en-Bresse;Entretien et réparation de véhicules automobiles\n")


@pytest.fixture
def ai_cli(cli_env, db_url, tmp_path):
    """`nightshift ARGS…` on a migrated database with the account fox and one import of two businesses."""
    migrate.upgrade(db_url)
    (tmp_path / "nightshift.yaml").write_text("ai:\n  requests_per_minute: 60000\n", encoding="utf-8")
    assert nightshift("accounts", "add", "fox", "--quota", "100000", env=cli_env, cwd=tmp_path).returncode == 0
    path = tmp_path / "entreprises.csv"
    path.write_text(CSV, encoding="utf-8")
    imported = nightshift("import", str(path), "--account", "fox", "--json", env=cli_env, cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr

    def run(*args: str):
        return nightshift(*args, env=cli_env, cwd=tmp_path)

    run.import_id = json.loads(imported.stdout.strip().splitlines()[-1])["import_id"]
    run.url = db_url
    return run


def last_json(result):
    return json.loads(result.stdout.strip().splitlines()[-1])


def ledger_rows(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(token_ledger)
                                .where(token_ledger.c.entry_kind != "grant")).scalar_one()
    finally:
        engine.dispose()


def test_generate_an_import_then_again_charges_once(ai_cli):
    dry = ai_cli("ai", "generate", "--import", str(ai_cli.import_id), "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    plan = last_json(dry)
    assert (plan["dry_run"], plan["requested"], plan["generated"]) == (True, 4, 0) and plan["tokens_estimated"] > 0
    assert ledger_rows(ai_cli.url) == 0  # no reservation
    first = ai_cli("ai", "generate", "--import", str(ai_cli.import_id), "--json")
    assert first.returncode == 0, first.stderr
    summary = last_json(first)
    assert set(summary) >= {"requested", "generated", "cached", "skipped_unchanged", "rejected", "waiting_quota",
                            "failed", "tokens_settled"}
    assert (summary["generated"], summary["failed"]) == (4, 0) and summary["tokens_settled"] > 0
    assert "NOT a language model" in summary["provider"]
    charged = ledger_rows(ai_cli.url)
    again = last_json(ai_cli("ai", "generate", "--import", str(ai_cli.import_id), "--json"))
    assert (again["generated"], again["skipped_unchanged"], again["tokens_settled"]) == (0, 4, 0)
    assert ledger_rows(ai_cli.url) == charged


def test_requests_and_show_list_what_was_generated(ai_cli):
    assert ai_cli("ai", "generate", "--business", "1", "--kind", "description").returncode == 0
    rows = last_json(ai_cli("ai", "requests", "--status", "completed", "--json"))
    assert [(row["business_id"], row["kind"]) for row in rows] == [(1, "description")]
    shown = ai_cli("ai", "show", "1")
    assert shown.returncode == 0 and "[description] template-v1" in shown.stdout
    assert "Boulangerie Dupont" in shown.stdout or "Garage Martin" in shown.stdout


def test_bad_usage_exits_2_with_one_line(ai_cli):
    neither = ai_cli("ai", "generate")
    assert neither.returncode == 2 and "give one of" in neither.stderr
    missing = ai_cli("ai", "generate", "--import", "999")
    assert missing.returncode == 2 and "no import 999" in missing.stderr
