"""`nightshift notify …` as users run it (the console script in a subprocess), on both databases."""

import csv
import io
import json

import sqlalchemy as sa

from nightshift.db import migrate
from nightshift.db.engine import create_engine
from nightshift.db.schema import notifications
from tests.conftest import nightshift


def run(cli_env, tmp_path, *args):
    return nightshift("notify", *args, env=cli_env, cwd=tmp_path)


def test_send_is_idempotent_per_key_and_invalid_phone_exits_2(cli_env, db_url, tmp_path):
    migrate.upgrade(db_url)
    args = ("send", "--app", "cargo", "--to", "70 12 34 56", "--body", "Votre colis est arrivé",
            "--idempotency-key", "colis-77", "--json")
    first = run(cli_env, tmp_path, *args)
    assert first.returncode == 0, first.stderr
    again = run(cli_env, tmp_path, *args)
    assert json.loads(first.stdout) == {"id": 1, "status": "pending", "created": True}
    assert json.loads(again.stdout) == {"id": 1, "status": "pending", "created": False}
    bad = run(cli_env, tmp_path, "send", "--app", "cargo", "--to", "0612345678", "--body", "x")
    assert bad.returncode == 2 and "to: 06123••678 is not a valid phone number for region ML" in bad.stderr
    assert "Traceback" not in bad.stderr
    unknown_type = run(cli_env, tmp_path, "send", "--app", "cargo", "--to", "70123456", "--body", "x", "--type", "x")
    assert unknown_type.returncode == 2 and "message_type: 'x' is not a known type" in unknown_type.stderr


def test_sweep_dry_run_then_sweep_show_list_export(cli_env, db_url, tmp_path):
    migrate.upgrade(db_url)
    for n, kind in enumerate(["otp", "colis_status"]):
        assert run(cli_env, tmp_path, "send", "--app", "cargo", "--to", f"+2237012345{n}", "--body",
                   f"code {n}", "--type", kind).returncode == 0
    dry = run(cli_env, tmp_path, "sweep", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    preview = json.loads(dry.stdout)
    assert preview["would_claim"] == 2 and {n["status"] for n in preview["notifications"]} == {"pending"}
    assert "code 0" not in dry.stdout and "+22370123450" not in dry.stdout
    swept = run(cli_env, tmp_path, "sweep", "--json")
    assert swept.returncode == 0, swept.stderr
    result = json.loads(swept.stdout)
    assert result["status"] == "success" and result["counts"]["sent"] == 2 and result["counts"]["claimed"] == 2
    assert "nothing left this machine" in result["counts"]["notice"]
    human = run(cli_env, tmp_path, "sweep")
    assert human.returncode == 0 and "claimed 0" in human.stdout and "open it in the Dagster UI" in human.stdout
    shown = json.loads(run(cli_env, tmp_path, "show", "1", "--json").stdout)
    assert (shown["status"], shown["attempts"], shown["to"]) == ("sent", 1, "+2237••••450")
    assert shown["next_attempt_at"].endswith("+00:00") and shown["attempt_log"][0]["outcome"] == "sent"
    listed = json.loads(run(cli_env, tmp_path, "list", "--status", "sent", "--json").stdout)
    assert [n["id"] for n in listed] == [1, 2]
    exported = run(cli_env, tmp_path, "export", "--app", "cargo", "--since", "2020-01-01")
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert [r["to"] for r in rows] == ["+2237••••450", "+2237••••451"] and "code 1" not in exported.stdout


def test_retry_cancel_and_bad_ids(cli_env, db_url, tmp_path):
    migrate.upgrade(db_url)
    for n in range(3):
        run(cli_env, tmp_path, "send", "--app", "cargo", "--to", "70 12 34 56", "--body", f"m{n}")
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(notifications.update().where(notifications.c.id.in_([1, 2])).values(status="failed_final"))
    engine.dispose()
    assert json.loads(run(cli_env, tmp_path, "retry", "1", "--json").stdout) == {"retried": 1}
    assert json.loads(run(cli_env, tmp_path, "retry", "--failed", "--app", "cargo", "--json").stdout) == \
        {"retried": 2}
    assert run(cli_env, tmp_path, "cancel", "3").returncode == 0
    again = run(cli_env, tmp_path, "cancel", "3")
    assert again.returncode == 2 and "notification 3 is cancelled" in again.stderr
    assert run(cli_env, tmp_path, "show", "99").returncode == 2
    assert "not a notification id" in run(cli_env, tmp_path, "show", "abc").stderr
    both = run(cli_env, tmp_path, "retry", "1", "--failed")
    assert both.returncode == 2 and "either one ID, or --failed" in both.stderr
    engine = create_engine(db_url)
    with engine.connect() as conn:
        assert [r.status for r in conn.execute(sa.select(notifications.c.status).order_by(notifications.c.id))] \
            == ["failed_retry", "failed_retry", "cancelled"]
    engine.dispose()


RECIPIENTS = "Téléphone;Prénom;Message\n70 12 34 56;Awa;Votre lot est prêt — 5 €\n0612345678;Jean;x\n" \
             "+223 76 00 00 01;Moussa;Votre lot est prêt\n70 12 34 56;Awa;encore\n"


def test_bulk_from_a_cp1252_semicolon_file_keyed_by_campaign_and_recipient(cli_env, db_url, tmp_path):
    migrate.upgrade(db_url)
    path = tmp_path / "destinataires.csv"
    path.write_bytes(RECIPIENTS.encode("cp1252"))
    dry = run(cli_env, tmp_path, "bulk", str(path), "--campaign", "lots-juin", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["enqueued"] == 2
    assert json.loads(run(cli_env, tmp_path, "list", "--json").stdout) == []  # the dry run enqueued nothing
    first = json.loads(run(cli_env, tmp_path, "bulk", str(path), "--campaign", "lots-juin", "--json").stdout)
    assert (first["campaign"], first["enqueued"], first["duplicates"], first["invalid"]) == ("lots-juin", 2, 1, 1)
    [error] = first["errors"]
    assert (error["line"], error["column"], error["code"], error["value"]) == (3, "Téléphone", "invalid_phone",
                                                                             "06123••678")
    again = json.loads(run(cli_env, tmp_path, "bulk", str(path), "--campaign", "lots-juin", "--json").stdout)
    assert (again["enqueued"], again["duplicates"]) == (0, 3)  # re-running the campaign sends nobody twice
    engine = create_engine(db_url)
    with engine.connect() as conn:
        bodies = [r.body for r in conn.execute(sa.select(notifications.c.body).order_by(notifications.c.id))]
    engine.dispose()
    assert bodies == ["Votre lot est prêt — 5 €", "Votre lot est prêt"]


def test_bulk_from_an_excel_file_and_from_clients_with_a_template(cli_env, db_url, tmp_path):
    import openpyxl

    migrate.upgrade(db_url)
    book = openpyxl.Workbook()
    book.active.append(["telephone", "prenom"])
    book.active.append(["+22370123456", "Awa"])
    book.active.append(["76000001", "Moussa"])
    book.save(tmp_path / "r.xlsx")
    result = run(cli_env, tmp_path, "bulk", str(tmp_path / "r.xlsx"), "--campaign", "c1", "--body",
                 "Bonjour {prenom}", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["enqueued"] == 2
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO clients (phone, first_name, city) VALUES ('+22370123456', 'Awa', "
                             "'Bamako'), ('+22376000002', 'Fanta', 'Bamako'), ('+22376000003', 'Issa', 'Kayes')"))
    from_clients = json.loads(run(cli_env, tmp_path, "bulk", "--from-clients", "--city", "bamako", "--campaign",
                                  "c1", "--body", "Bonjour {first_name} de {ville}", "--json").stdout)
    assert (from_clients["enqueued"], from_clients["duplicates"]) == (1, 1)  # Issa lives in Kayes
    with engine.connect() as conn:
        assert conn.execute(sa.select(notifications.c.body).order_by(notifications.c.id.desc())).scalar() \
            == "Bonjour Fanta de Bamako"
    engine.dispose()
    kayes = json.loads(run(cli_env, tmp_path, "bulk", "--from-clients", "--city", "Kayes", "--campaign", "c1",
                           "--body", "Bonjour {first_name}", "--dry-run", "--json").stdout)
    assert (kayes["enqueued"], kayes["duplicates"]) == (1, 0)
    city_alone = run(cli_env, tmp_path, "bulk", str(tmp_path / "r.xlsx"), "--city", "Kayes", "--campaign", "c4")
    assert city_alone.returncode == 2 and "--from-clients" in city_alone.stderr
    bad = run(cli_env, tmp_path, "bulk", "--from-clients", "--campaign", "c2", "--body", "Bonjour {age}")
    assert bad.returncode == 2 and "{age} is not a column" in bad.stderr
    no_source = run(cli_env, tmp_path, "bulk", "--campaign", "c3")
    assert no_source.returncode == 2 and "either a FILE" in no_source.stderr
