"""`nightshift import FILE --dry-run --diff` and `nightshift imports undo ID`, run as users run them (the
console script in a subprocess), on both backends."""

import json
from pathlib import Path

import sqlalchemy as sa

from nightshift.db import migrate
from nightshift.db.engine import create_engine
from nightshift.db.schema import clients
from tests.conftest import nightshift

FIRST = "telephone;prenom;nom\n+22370123456;Awa;Traoré\n+22376543210;Moussa;Keïta\n"
SECOND = ("telephone;prenom;nom\n+22370123456;Awa;Diarra\n+22376543210;Moussa;Keïta\n+22365012345;Fanta;Coulibaly\n"
          "abc;X;Y\n")


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def phones(db_url: str) -> list[str]:
    engine = create_engine(db_url)
    with engine.connect() as conn:
        found = sorted(conn.execute(sa.select(clients.c.phone)).scalars())
    engine.dispose()
    return found


def test_a_dry_run_diff_lists_each_first_row_with_what_would_change(cli_env, db_url, tmp_path):
    migrate.upgrade(db_url)
    first = nightshift("import", str(write(tmp_path / "clients.csv", FIRST)), "--profile", "clients",
                       env=cli_env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    second = write(tmp_path / "clients-2.csv", SECOND)
    result = nightshift("import", str(second), "--profile", "clients", "--dry-run", "--diff", "--json",
                        env=cli_env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["inserted"], summary["updated"], summary["unchanged"], summary["invalid"]) == (1, 1, 1, 1)
    assert [(e["line"], e["status"]) for e in summary["preview"]] == [
        (2, "changed"), (3, "unchanged"), (4, "new"), (5, "invalid")]
    assert summary["preview"][0]["changes"] == [{"column": "nom", "old": "Traoré", "new": "Diarra"}]

    text = nightshift("import", str(second), "--profile", "clients", "--dry-run", "--diff", "--diff-rows", "2",
                      env=cli_env, cwd=tmp_path)
    assert text.stdout.splitlines()[-3:] == ["  les 2 premières lignes :",
                                             "    ligne 2 : modifiée — nom : Traoré → Diarra",
                                             "    ligne 3 : inchangée"]
    assert phones(db_url) == ["+22370123456", "+22376543210"]  # nothing written

    real = nightshift("import", str(second), "--diff", env=cli_env, cwd=tmp_path)
    assert real.returncode == 2 and "--diff montre ce qu'un import changerait : ajoutez --dry-run" in real.stderr


def test_undo_deletes_what_an_import_created_and_says_what_it_keeps(cli_env, db_url, tmp_path):
    migrate.upgrade(db_url)
    first = json.loads(nightshift("import", str(write(tmp_path / "clients.csv", FIRST)), "--profile", "clients",
                                  "--json", env=cli_env, cwd=tmp_path).stdout)
    second = json.loads(nightshift("import", str(write(tmp_path / "clients-2.csv", SECOND)), "--profile",
                                   "clients", "--json", env=cli_env, cwd=tmp_path).stdout)
    assert (second["inserted"], second["updated"]) == (1, 1)

    dry = nightshift("imports", "undo", str(first["import_id"]), "--dry-run", "--json", env=cli_env, cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout) == {
        "import_id": first["import_id"], "dry_run": True, "deleted": 1, "deleted_by_table": {"clients": 1},
        "kept": [{"table": "clients", "reason": "changed_later", "count": 1, "keys": ["+22370123456"]}]}
    assert len(phones(db_url)) == 3

    undone = nightshift("imports", "undo", str(second["import_id"]), env={**cli_env, "NIGHTSHIFT_LANG": "en"},
                        cwd=tmp_path)
    assert undone.returncode == 0, undone.stderr
    assert undone.stdout.splitlines() == [
        f"Import {second['import_id']} undone: 1 row deleted (clients 1)",
        "  clients: 1 kept with the import's values, which only updated them (earlier values are not kept): "
        "+22370123456"]
    assert phones(db_url) == ["+22370123456", "+22376543210"]
    again = nightshift("imports", "undo", str(second["import_id"]), env=cli_env, cwd=tmp_path)
    assert again.returncode == 2 and f"l'import {second['import_id']} est déjà annulé" in again.stderr
