"""`nightshift export PROFILE`: export → import as it is changes nothing; edit one cell → exactly that row
updated. The command runs in process; the imports go through the normal import path (run_import). Both
backends, CSV and XLSX."""

import csv
import io
from pathlib import Path

import openpyxl
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from nightshift.config import load_settings
from nightshift.db.schema import accounts, businesses, categories, cities, clients, subcategories
from nightshift.imports import intake
from nightshift.imports.profiles import PROFILES
from nightshift.imports.service import ImportOptions, run_import
from pipelines import cli

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
# Fields a profile reads that its export does not write: a category's parent (the export holds top-level
# categories) and the combined `Nom (CP)` column of cities (written as nom and code_postal).
NOT_EXPORTED = {"categories": {"parent"}, "cities": {"villes"}}
# Each profile's sample, the table it fills, and a cell to edit: the column and its row's database key column.
CASES = {
    "businesses": ("entreprises.csv", businesses, "nom_commercial", "trade_name"),
    "categories": ("categories.csv", categories, "description", "description"),
    "subcategories": ("sous_categories.csv", subcategories, "description", "description"),
    "cities": ("villes.csv", cities, "departement", "department"),
    "clients": ("clients.csv", clients, "prenom", "first_name"),
}


@pytest.fixture
def env(db, db_url, sealed_env) -> dict[str, str]:
    """The command's environment and the imports' (an empty settings file: the defaults)."""
    return {**sealed_env, "NIGHTSHIFT_DATABASE_URL": db_url}


@pytest.fixture
def settings(env):
    settings = load_settings(env)
    settings.ensure_data_dirs()
    return settings


def invoke(env: dict[str, str], *args: str):
    return CliRunner().invoke(cli.main, list(args), env=env)


def read_table(path: Path) -> list[list[object]]:
    if path.suffix == ".xlsx":
        return [list(row) for row in openpyxl.load_workbook(path).active.iter_rows(values_only=True)]
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.reader(handle, delimiter=";"))


def edit_cell(path: Path, row: int, column: str, value: str) -> None:
    if path.suffix == ".xlsx":
        workbook = openpyxl.load_workbook(path)
        header = [cell.value for cell in workbook.active[1]]
        workbook.active.cell(row + 1, header.index(column) + 1, value)
        workbook.save(path)
        return
    rows = read_table(path)
    rows[row][rows[0].index(column)] = value
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        csv.writer(handle, delimiter=";").writerows(rows)


@pytest.mark.parametrize("file_format", ["csv", "xlsx"])
def test_export_imports_back_unchanged_and_one_edited_cell_updates_that_row_only(db, env, settings, tmp_path,
                                                                                 file_format):
    for profile, (sample, table, column, db_column) in CASES.items():
        imported = run_import(db, SAMPLES / sample, settings, ImportOptions(profile=profile))
        assert imported.status in ("succeeded", "partial"), imported.message
        with db.connect() as conn:
            stored = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()

        exported = tmp_path / f"{profile}.{file_format}"
        result = invoke(env, "export", profile, "--format", file_format, "--output", str(exported))
        assert result.exit_code == 0, result.output
        assert result.output == f"{profile}: {stored} row(s) exported to {exported}\n"
        rows = read_table(exported)
        assert rows[0] == [f.name for f in PROFILES[profile].fields
                           if f.name not in NOT_EXPORTED.get(profile, set())], "the profile's names"
        assert len(rows) - 1 == stored

        again = run_import(db, exported, settings, ImportOptions(profile=profile))
        assert (again.status, again.inserted, again.updated, again.unchanged, again.invalid,
                again.unknown_columns) == ("succeeded", 0, 0, stored, 0, []), (profile, again.errors)

        edit_cell(exported, 2, column, "Édité ; à la main")
        edited = run_import(db, exported, settings, ImportOptions(profile=profile))
        assert (edited.inserted, edited.updated, edited.unchanged, edited.invalid) == (0, 1, stored - 1, 0), profile
        with db.connect() as conn:
            changed = conn.execute(sa.select(sa.func.count()).select_from(table)
                                   .where(table.c[db_column] == "Édité ; à la main")).scalar_one()
        assert changed == 1, profile


def test_csv_goes_to_stdout_without_output_and_reads_back_as_it_is(db, env, settings, tmp_path):
    run_import(db, SAMPLES / "clients.csv", settings, ImportOptions(profile="clients"))
    files_before = sorted(p for p in settings.data_dir.rglob("*") if p.is_file())
    result = invoke(env, "export", "clients")
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.output), delimiter=";"))
    assert rows[0] == ["telephone", "prenom", "nom", "email", "region", "ville"]
    assert all(row[0].startswith("'+") for row in rows[1:]), "a CSV cell starting with + is neutralised"
    # The rows went to stdout only: nothing was written under the data folder.
    assert sorted(p for p in settings.data_dir.rglob("*") if p.is_file()) == files_before
    exported = tmp_path / "stdout.csv"
    exported.write_text(result.output, encoding="utf-8")
    again = run_import(db, exported, settings, ImportOptions(profile="clients"))
    assert (again.updated, again.unchanged, again.invalid) == (0, len(rows) - 1, 0)


def test_values_are_written_as_the_importer_reads_them(db, env, settings, tmp_path):
    upload = tmp_path / "entreprises.csv"
    upload.write_text("nom;latitude;date_creation;is_active;siret;code_postal\n"
                      "Garage Martin;46,2051;03/05/2001;oui;55210055400013;01000\n", encoding="utf-8")
    run_import(db, upload, settings, ImportOptions(profile="businesses"))
    as_csv, as_xlsx = tmp_path / "out.csv", tmp_path / "out.xlsx"
    assert invoke(env, "export", "businesses", "--output", str(as_csv)).exit_code == 0
    assert invoke(env, "export", "businesses", "--output", str(as_xlsx)).exit_code == 0, "format by extension"
    header, row = read_table(as_csv)
    values = dict(zip(header, row, strict=True))
    assert (values["latitude"], values["date_creation"], values["is_active"], values["siren"], values["siret"],
            values["code_postal"]) == ("46,2051", "03/05/2001", "oui", "552100554", "55210055400013", "01000")
    header, row = read_table(as_xlsx)
    values = dict(zip(header, row, strict=True))
    assert (values["latitude"], values["is_active"], values["siren"], values["code_postal"]) == (
        46.2051, True, "552100554", "01000")
    assert values["date_creation"].date().isoformat() == "2001-05-03"


def test_account_exports_the_rows_its_imports_wrote(db, env, settings, tmp_path):
    with db.begin() as conn:
        account_id = conn.execute(accounts.insert().values(slug="acme", name="Acme")).inserted_primary_key[0]
    ours, theirs = tmp_path / "ours.csv", tmp_path / "theirs.csv"
    ours.write_text("telephone;prenom\n+22370000001;Awa\n", encoding="utf-8")
    theirs.write_text("telephone;prenom\n+22370000002;Fanta\n", encoding="utf-8")
    registered = intake.register(db, intake.Upload(ours, PROFILES["clients"], None), settings,
                                 detect_duplicates=False, account_id=account_id)
    run_import(db, ours, settings, ImportOptions(profile="clients", account_id=account_id),
               import_id=registered.import_id)
    run_import(db, theirs, settings, ImportOptions(profile="clients"))

    result = invoke(env, "export", "clients", "--account", "acme")
    assert result.exit_code == 0, result.output
    assert [row[:2] for row in csv.reader(io.StringIO(result.output), delimiter=";")] == [
        ["telephone", "prenom"], ["'+22370000001", "Awa"]]
    assert invoke(env, "export", "clients", "--account", "nobody").exit_code == 2


def test_bad_usage_exits_2_with_what_to_do(db, env, tmp_path):
    unknown = invoke(env, "export", "companies")
    assert unknown.exit_code == 2
    assert "companies" in unknown.output and ", ".join(PROFILES) in unknown.output
    xlsx_to_terminal = invoke(env, "export", "clients", "--format", "xlsx")
    assert xlsx_to_terminal.exit_code == 2 and "--output" in xlsx_to_terminal.output
    mismatch = invoke(env, "export", "clients", "--format", "csv", "--output", str(tmp_path / "c.xlsx"))
    assert mismatch.exit_code == 2 and ".csv" in mismatch.output and not (tmp_path / "c.xlsx").exists()
    json_to_terminal = invoke(env, "export", "clients", "--json")
    assert json_to_terminal.exit_code == 2 and "--output" in json_to_terminal.output
    described = invoke(env, "export", "clients", "--output", str(tmp_path / "c.csv"), "--json")
    assert described.exit_code == 0, described.output
    assert described.output.strip() == (f'{{"profile": "clients", "format": "csv", "rows": 0, '
                                        f'"path": "{tmp_path / "c.csv"}"}}')


def test_a_control_character_xlsx_cannot_hold_is_named_and_csv_keeps_it(db, env, settings, tmp_path):
    upload = tmp_path / "categories.csv"
    upload.write_text("nom;description\nCafé;avant\x0baprès\n", encoding="utf-8")
    run_import(db, upload, settings, ImportOptions(profile="categories"))
    as_xlsx = tmp_path / "categories.xlsx"
    refused = invoke(env, "export", "categories", "--output", str(as_xlsx))
    assert refused.exit_code == 2
    assert "line 2, column 'description'" in refused.output and "--format csv" in refused.output
    assert not as_xlsx.exists()
    as_csv = tmp_path / "categories-export.csv"
    assert invoke(env, "export", "categories", "--output", str(as_csv)).exit_code == 0
    again = run_import(db, as_csv, settings, ImportOptions(profile="categories"))
    assert (again.updated, again.unchanged, again.invalid) == (0, 1, 0)
