"""`nightshift imports list/show/failed-partitions` on import log rows, in process (no Dagster run)."""

import hashlib
import json
from pathlib import Path

import pytest

from nightshift.db.schema import imports


def add(engine, name: str, status: str, **values) -> int:
    row = {"file_name": name, "file_path": f"/data/{name}", "sha256": name.ljust(64, "0")[:64], "size_bytes": 1,
           "status": status, "stage": "done", "partition_key": f"{name}-key", "dagster_run_id": "run-1", **values}
    with engine.begin() as conn:
        return conn.execute(imports.insert().values(**row)).inserted_primary_key[0]


def kept_file(folder: Path, name: str, content: str) -> dict:
    """A file kept where the import left it, with the size and hash the import log records for it."""
    path = folder / name
    path.write_text(content, encoding="utf-8")
    return {"file_path": str(path), "sha256": hashlib.sha256(content.encode()).hexdigest(),
            "size_bytes": len(content.encode())}


@pytest.fixture
def invoke(db, db_url, invoke_cli):
    def run(*args: str, lang: str = "en"):
        return invoke_cli(*args, lang=lang, env={"NIGHTSHIFT_DATABASE_URL": db_url})

    return run


def test_show_says_what_applies_to_the_file_with_correct_plurals(db, invoke):
    excel = add(db, "villes.xlsx", "succeeded", profile="cities", sheet="Villes", rows_total=1, inserted=1,
                rows_per_second=52.3, message="1 rows: 1 inserted, 0 updated, 0 unchanged, 0 invalid")
    csv = add(db, "villes.csv", "partial", profile="cities", encoding="utf-8", delimiter=";", rows_total=3,
              inserted=2, invalid=1, message="3 rows: 2 inserted, 0 updated, 0 unchanged, 1 invalid; "
                                             "unknown columns ignored: couleur")
    shown = invoke("imports", "show", str(excel))
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.splitlines() == [f"Import {excel} — villes.xlsx: succeeded — profile cities, sheet 'Villes'",
                                         "  1 row: 1 inserted, 0 updated, 0 unchanged, 0 invalid (52.3 rows/s)"]
    assert invoke("imports", "show", str(excel), lang="fr").stdout.splitlines()[1] == (
        "  1 ligne : 1 insérée, 0 mise à jour, 0 inchangée, 0 invalide (52.3 lignes/s)")
    # The counts once; what the message says besides them, once.
    assert invoke("imports", "show", str(csv)).stdout.splitlines() == [
        f"Import {csv} — villes.csv: partial — profile cities, encoding utf-8, delimiter ';'",
        "  3 rows: 2 inserted, 0 updated, 0 unchanged, 1 invalid", "  unknown columns ignored: couleur"]


def test_list_has_column_headings_in_the_language_of_the_setting(db, invoke):
    add(db, "villes.csv", "partial", profile="cities", rows_total=3, inserted=2, invalid=1)
    add(db, "inconnu.csv", "failed", failure_kind="bad_input")
    assert invoke("imports", "list").stdout.splitlines() == [
        "ID  STATUS   PROFILE  ROWS  INSERTED  UPDATED  UNCHANGED  INVALID  FILE",
        " 2  failed   -           0         0        0          0        0  inconnu.csv",
        " 1  partial  cities      3         2        0          0        1  villes.csv",
    ]
    assert invoke("imports", "list", lang="fr").stdout.splitlines()[:2] == [
        "ID  STATUT   PROFIL  LIGNES  INSÉRÉES  MISES À JOUR  INCHANGÉES  INVALIDES  FICHIER",
        " 2  échoué   -            0         0             0           0          0  inconnu.csv",
    ]


def test_failed_partitions_lists_for_a_backfill_only_what_a_run_can_fix(db, invoke, tmp_path):
    add(db, "panne.csv", "failed", failure_kind="transient", message="OperationalError: server closed the connection")
    add(db, "bogue.csv", "failed", failure_kind="internal", message="ZeroDivisionError: division by zero")
    add(db, "entete.csv", "failed", failure_kind="bad_input", message="entete.csv: required column(s) missing: nom",
        **kept_file(tmp_path, "entete.csv", "ville;cp\nAgen;47000\n"))
    fixed = kept_file(tmp_path, "corrige.csv", "nom;code_postal\nAgen;XYZ\n")
    add(db, "corrige.csv", "failed", failure_kind="bad_input", message="1 of 1 rows invalid", **fixed)
    Path(fixed["file_path"]).write_text("nom;code_postal\nAgen;47000\n", encoding="utf-8")  # fixed where kept
    add(db, "bon.csv", "succeeded")

    default = invoke("imports", "failed-partitions")
    assert default.exit_code == 0, default.output
    assert default.stdout == "bogue.csv-key,corrige.csv-key,panne.csv-key\n"
    assert "1 partition failed on its data and is not listed" in default.stderr

    data = invoke("imports", "failed-partitions", "--kind", "data")
    assert data.stdout.splitlines()[0].split() == ["PARTITION", "ID", "KIND", "BACKFILL", "FILE", "REASON"]
    assert [line.split()[:5] for line in data.stdout.splitlines()[1:]] == [
        ["corrige.csv-key", "4", "data", "yes", "corrige.csv"], ["entete.csv-key", "3", "data", "no", "entete.csv"]]
    assert "required column(s) missing: nom" in data.stdout

    listed = json.loads(invoke("imports", "failed-partitions", "--all", "--json").stdout)
    assert [(f["partition_key"], f["kind"], f["backfill"]) for f in listed] == [
        ("bogue.csv-key", "transient", True), ("corrige.csv-key", "data", True),
        ("entete.csv-key", "data", False), ("panne.csv-key", "transient", True)]
    shown = json.loads(invoke("imports", "show", str(listed[2]["import_id"]), "--json").stdout)
    assert {key: value for key, value in shown.items() if key != "errors"} == {
        key: value for key, value in listed[2].items() if key != "backfill"}, "the same vocabulary"
    assert json.loads(invoke("imports", "failed-partitions", "--json").stdout) == [
        f for f in listed if f["backfill"]]
    assert invoke("imports", "failed-partitions", "--kind", "data", "--all").exit_code == 2
