"""Imports end to end in the core (no Dagster): read → validate → merge → log → report, both backends."""

import csv
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from nightshift.db import migrate
from nightshift.db.schema import businesses, categories, cities, clients, import_errors, imports, subcategories
from nightshift.imports import intake
from nightshift.imports.log import MAX_DETAILED_ERRORS
from nightshift.imports.service import ImportOptions, run_import

FOX_HEADER = ("siren,nom,siret,nom_commercial,adresse,code_postal,ville_nom,naf_code,naf_libelle,telephone,"
              "email_contact,site_web,is_active")


def count(engine, table) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


def registered_import(engine, path: Path, settings, profile=None) -> int:
    from nightshift.imports.profiles import PROFILES

    upload = intake.Upload(path, PROFILES[profile] if profile else None, None)
    return intake.register(engine, upload, settings, detect_duplicates=False).import_id


@pytest.fixture
def engine(db):
    return db


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def test_fox_export_imports_unchanged_then_reimport_is_unchanged(engine, settings, tmp_path):
    path = write(tmp_path / "entreprises.csv", "\n".join([
        FOX_HEADER,
        "732829320,Boulangerie Dupont,73282932000074,Chez Dupont,12 rue de la Paix,75002,Paris,1071C,"
        "Boulangerie et boulangerie-pâtisserie,+33 1 42 60 00 00,contact@dupont.fr,www.dupont.fr,oui",
        "552100554,Garage Martin,,,,1000,Bourg-en-Bresse,4520A,Entretien automobiles,,,,non",
    ]) + "\n")
    first = run_import(engine, path, settings, ImportOptions(profile="businesses"))
    assert (first.status, first.rows_total, first.inserted, first.updated, first.unchanged, first.invalid) == (
        "succeeded", 2, 2, 0, 0, 0)
    assert first.delimiter == "," and first.encoding.startswith("utf-8")
    with engine.connect() as conn:
        rows = {r.name: r for r in conn.execute(sa.select(businesses))}
    dupont = rows["Boulangerie Dupont"]
    assert (dupont.siren, dupont.siret, dupont.naf_code, dupont.postal_code) == (
        "732829320", "73282932000074", "10.71C", "75002")
    assert dupont.natural_key == "siret:73282932000074"
    assert dupont.website == "https://www.dupont.fr" and dupont.is_active is True
    assert rows["Garage Martin"].postal_code == "01000" and rows["Garage Martin"].is_active is False
    assert rows["Garage Martin"].natural_key == "siren:552100554"

    again = run_import(engine, path, settings, ImportOptions(profile="businesses"))
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 2)

    changed = write(tmp_path / "entreprises2.csv", path.read_text().replace("Chez Dupont", "Dupont & Fils"))
    third = run_import(engine, changed, settings, ImportOptions(profile="businesses"))
    assert (third.inserted, third.updated, third.unchanged) == (0, 1, 1)
    assert count(engine, businesses) == 2


def test_dry_run_counts_against_the_database_and_writes_nothing(engine, settings, tmp_path):
    path = write(tmp_path / "villes.csv", "nom;code_postal\nBourg;1000\nLyon;69001\n")
    run_import(engine, path, settings, ImportOptions(profile="cities"))
    more = write(tmp_path / "villes2.csv", "nom;code_postal\nBourg;1000\nLyon;69001\nNice;06000\n")
    dry = run_import(engine, more, settings, ImportOptions(profile="cities", dry_run=True))
    assert (dry.status, dry.inserted, dry.updated, dry.unchanged) == ("succeeded", 1, 0, 2)
    assert count(engine, cities) == 2
    assert count(engine, imports) == 0


def test_invalid_rows_are_reported_with_line_column_value_and_a_fixable_report(engine, settings, tmp_path):
    path = write(tmp_path / "clients.csv", "\r\n".join([
        "Téléphone;Prénom;Nom;Email",
        "70 12 34 56;Awa;Traoré;awa@example.ml",
        "0612345678;Jean;Dupont;jean@example.fr",
        "+223 70-12-34-57;Moussa;Keita;pas-un-email",
        "0022376543210;Fanta;Diarra;",
    ]) + "\r\n", encoding="cp1252")
    import_id = registered_import(engine, path, settings, "clients")
    outcome = run_import(engine, path, settings, ImportOptions(profile="clients"), import_id=import_id)
    assert (outcome.status, outcome.rows_total, outcome.inserted, outcome.invalid) == ("partial", 4, 2, 2)
    assert outcome.encoding == "cp1252" and outcome.delimiter == ";"
    assert [(e["line"], e["column"], e["value"], e["code"]) for e in outcome.errors] == [
        (3, "Téléphone", "0612345678", "invalid_phone"),
        (4, "Email", "pas-un-email", "invalid_email"),
    ]
    assert "ML" in outcome.errors[0]["message"]
    with engine.connect() as conn:
        phones = sorted(conn.execute(sa.select(clients.c.phone)).scalars())
        logged = conn.execute(sa.select(import_errors.c.line, import_errors.c.code)
                              .order_by(import_errors.c.line)).all()
        log_row = conn.execute(sa.select(imports).where(imports.c.id == import_id)).mappings().one()
    assert phones == ["+22370123456", "+22376543210"]
    assert [tuple(r) for r in logged] == [(3, "invalid_phone"), (4, "invalid_email")]
    assert (log_row["status"], log_row["stage"], log_row["invalid"]) == ("partial", "done", 2)
    assert log_row["error_counts"] == {"invalid_phone": 1, "invalid_email": 1}

    report = Path(outcome.error_report)
    assert report.suffix == ".csv" and report.parent == settings.reports_dir
    assert report.read_bytes().startswith(b"\xef\xbb\xbf")
    with report.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle, delimiter=";"))
    assert rows[0] == ["Téléphone", "Prénom", "Nom", "Email", "_ligne", "_colonne", "_erreur"]
    assert [r[4] for r in rows[1:]] == ["3", "4"]
    assert rows[1][5] == "Téléphone" and rows[2][5] == "Email"

    # The user fixes the report in place and uploads it again: the fixed rows import.
    rows[1][0] = "+33 6 12 34 56 78"
    rows[2][3] = "moussa@example.ml"
    with report.open("w", encoding="utf-8-sig", newline="") as handle:
        csv.writer(handle, delimiter=";").writerows(rows)
    fixed = run_import(engine, report, settings, ImportOptions(profile="clients"))
    assert (fixed.status, fixed.inserted, fixed.invalid, fixed.unknown_columns) == ("succeeded", 2, 0, [])
    assert count(engine, clients) == 4


def test_duplicate_keys_later_row_wins_and_earlier_line_is_reported(engine, settings, tmp_path):
    path = write(tmp_path / "villes.csv", "nom,code_postal,population\nBourg,01000,100\nLyon,69001,5\n"
                                          "Bourg,1000,200\n")
    outcome = run_import(engine, path, settings, ImportOptions(profile="cities"))
    assert (outcome.inserted, outcome.invalid) == (2, 1)
    [error] = outcome.errors
    assert (error["line"], error["code"]) == (2, "duplicate_key")
    assert "4" in error["message"]
    with engine.connect() as conn:
        assert conn.execute(sa.select(cities.c.population).where(cities.c.slug == "bourg")).scalar_one() == 200


def test_the_corrected_report_does_not_bring_back_an_earlier_line_of_a_repeated_key(engine, settings, tmp_path):
    path = write(tmp_path / "villes.csv", "nom,code_postal,population\nBourg,01000,100\nLyon,69001,x\n"
                                          "Nice,06000,340000\nBourg,1000,200\n")
    dry = run_import(engine, path, settings, ImportOptions(profile="cities", dry_run=True))
    assert dry.invalid == 2 and dry.error_report is None and list(settings.reports_dir.iterdir()) == []

    outcome = run_import(engine, path, settings, ImportOptions(profile="cities"))
    assert (outcome.inserted, outcome.invalid) == (2, 2)
    report = Path(outcome.error_report)
    with report.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    assert [r[3] for r in rows[1:]] == ["3"]  # Lyon only: line 2 lost to line 5, which was imported
    rows[1][2] = "522250"
    with report.open("w", encoding="utf-8-sig", newline="") as handle:
        csv.writer(handle).writerows(rows)
    fixed = run_import(engine, report, settings, ImportOptions(profile="cities"))
    assert (fixed.status, fixed.inserted) == ("succeeded", 1)
    with engine.connect() as conn:
        assert dict(conn.execute(sa.select(cities.c.slug, cities.c.population)).all()) == {
            "bourg": 200, "lyon": 522250, "nice": 340000}


def test_strict_mode_writes_nothing_when_any_row_is_invalid(engine, settings, tmp_path):
    path = write(tmp_path / "villes.csv", "nom,code_postal\nBourg,01000\nLyon,ABCDE\n")
    outcome = run_import(engine, path, settings, ImportOptions(profile="cities", strict=True))
    assert (outcome.status, outcome.inserted, outcome.invalid) == ("failed", 0, 1)
    assert "--strict" in outcome.message
    assert count(engine, cities) == 0


def test_more_than_half_invalid_aborts_and_writes_nothing(engine, settings, tmp_path):
    path = write(tmp_path / "villes.csv", "nom,code_postal\nBourg,01000\nA,x\nB,y\n")
    outcome = run_import(engine, path, settings, ImportOptions(profile="cities"))
    assert (outcome.status, outcome.invalid, outcome.failure_kind) == ("failed", 2, "bad_input")
    assert "imports.abort_invalid_ratio" in outcome.message
    assert count(engine, cities) == 0
    assert outcome.error_report is not None


def test_an_aborted_import_records_its_report_and_errors_in_its_final_state(engine, settings):
    """Nothing is merged, but the log's final state has the counts, the detailed errors and the error
    report's path; the upload moves to failed/ and the log says done."""
    upload = write(settings.uploads_dir / "villes.csv", "nom;code_postal\nBourg;01000\nA;x\nB;y\n")
    import_id = registered_import(engine, upload, settings, "cities")
    outcome = run_import(engine, upload, settings, ImportOptions(profile="cities"), import_id=import_id,
                         move_file=True)

    assert (outcome.status, outcome.failure_kind, outcome.invalid, outcome.inserted) == ("failed", "bad_input", 2, 0)
    row = import_log_row(engine, import_id)
    assert (row["status"], row["stage"], row["invalid"], row["failure_kind"]) == ("failed", "done", 2, "bad_input")
    assert row["message"] == outcome.message and "imports.abort_invalid_ratio" in row["message"]
    assert row["error_report_path"] == outcome.error_report and Path(outcome.error_report).exists()
    assert row["file_path"] == outcome.file_path and "/failed/" in outcome.file_path and not upload.exists()
    with engine.connect() as conn:
        stored = conn.execute(sa.select(import_errors.c.line).where(import_errors.c.import_id == import_id)
                              .order_by(import_errors.c.line)).scalars().all()
    assert stored == [3, 4] and count(engine, cities) == 0


def test_a_database_error_in_the_merge_writes_nothing(engine, settings, tmp_path, monkeypatch):
    """The categories merged before the target that fails roll back with it, and the log says why."""
    from nightshift.imports.merge import StagingTable

    path = write(tmp_path / "b.csv", "nom;categorie;code_postal\nChez Awa;Restauration;75001\n")
    import_id = registered_import(engine, path, settings, "businesses")
    merge = StagingTable.merge

    def failing_for_businesses(self, *args, **kwargs):
        if self.target.name == "businesses":
            raise sa.exc.OperationalError("INSERT INTO businesses …", {}, ConnectionError("connection lost"))
        return merge(self, *args, **kwargs)

    monkeypatch.setattr(StagingTable, "merge", failing_for_businesses)
    with pytest.raises(sa.exc.OperationalError):
        run_import(engine, path, settings, ImportOptions(profile="businesses"), import_id=import_id)

    assert (count(engine, categories), count(engine, businesses), count(engine, import_errors)) == (0, 0, 0)
    row = import_log_row(engine, import_id)
    assert (row["status"], row["failure_kind"], row["stage"], row["rows_total"]) == ("failed", "transient",
                                                                                    "validated", 1)


def test_missing_required_column_names_it_and_the_headers_found(engine, settings, tmp_path):
    path = write(tmp_path / "clients.csv", "prenom,nom\nAwa,Traoré\n")
    outcome = run_import(engine, path, settings, ImportOptions(profile="clients"))
    assert outcome.status == "failed"
    assert "telephone" in outcome.message and "prenom, nom" in outcome.message
    assert count(engine, clients) == 0


def test_businesses_categories_are_created_or_rejected(engine, settings, tmp_path):
    path = write(tmp_path / "b.csv", "nom;categorie;sous_categorie;code_postal\nChez Awa;Restauration;Maquis;"
                                     "75001\nGarage;Auto;;69001\n")
    refused = run_import(engine, path, settings, ImportOptions(profile="businesses", create_categories=False))
    assert (refused.status, refused.invalid) == ("failed", 2)
    assert [(e["line"], e["code"], e["value"]) for e in refused.errors] == [
        (2, "unknown_category", "Restauration"), (3, "unknown_category", "Auto")]  # as written, not the slug
    outcome = run_import(engine, path, settings, ImportOptions(profile="businesses"))
    assert (outcome.status, outcome.inserted, outcome.categories_created) == ("succeeded", 2, 3)
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(categories.c.slug, subcategories.c.slug)
            .select_from(businesses.join(categories, businesses.c.category_id == categories.c.id)
                         .join(subcategories, businesses.c.subcategory_id == subcategories.c.id))
        ).one()
    assert tuple(row) == ("restauration", "maquis")


def test_real_wordpress_category_export(engine, settings, real_samples):
    """categorie.csv: 2,236 terms, 1,945 top-level and 291 with a parent (sub-categories).

    - too_long 43: 29 category names over 100 characters, and 14 sub-categories whose parent is one of
      those over-long names;
    - duplicate_key 127: 126 top-level names whose slug repeats an earlier one (WordPress had suffixed
      their slugs; œ folds to oe and the non-breaking hyphen in
      "IVRY‑SUR‑SEINE" is a hyphen) and 1 sub-category repeated under the same parent; the later
      row wins;
    - inserted 2,066 = 1,790 distinct categories + 276 distinct sub-categories (no parent is missing).
    """
    outcome = run_import(engine, real_samples / "foxreviews" / "categorie.csv", settings,
                         ImportOptions(profile="categories"))
    assert (outcome.rows_total, outcome.inserted, outcome.invalid) == (2236, 2066, 170)
    assert outcome.error_counts == {"too_long": 43, "duplicate_key": 127}
    assert (count(engine, categories), count(engine, subcategories)) == (1790, 276)
    assert outcome.categories_created == 0
    with engine.connect() as conn:
        names = list(conn.execute(sa.select(categories.c.name)).scalars())
    assert not any("&amp;" in n for n in names)
    assert "Services à la personne – Aide & Entretien" in names

    again = run_import(engine, real_samples / "foxreviews" / "categorie.csv", settings,
                       ImportOptions(profile="categories"))
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 2066)


def test_real_city_list_pads_postal_codes(engine, settings, real_samples):
    """villes france.csv: 39,192 `Nom (CP)` rows; 3,432 codes lost their leading zero (padded);
    2,177 (name, cp) pairs occur more than once, 3,681 extra rows in all: each earlier copy is
    reported as duplicate_key, so 39,192 - 3,681 = 35,511 distinct cities are inserted."""
    outcome = run_import(engine, real_samples / "foxreviews" / "villes france.csv", settings,
                         ImportOptions(profile="cities"))
    assert (outcome.rows_total, outcome.inserted, outcome.invalid) == (39192, 35511, 3681)
    assert outcome.error_counts == {"duplicate_key": 3681}
    with engine.connect() as conn:
        postal = conn.execute(sa.select(cities.c.postal_code).where(cities.c.slug == "l-abergement-clemenciat"))
        assert postal.scalar_one() == "01400"
        short = conn.execute(sa.select(sa.func.count()).where(sa.func.length(cities.c.postal_code) != 5))
        assert short.scalar_one() == 0
        padded = conn.execute(sa.select(sa.func.count()).where(cities.c.postal_code.like("0%")))
        assert padded.scalar_one() > 0


def test_unmigrated_database_is_an_infrastructure_error(settings, tmp_path, db_url):
    from nightshift.db.engine import create_engine

    engine = create_engine(db_url)
    path = write(tmp_path / "villes.csv", "nom,code_postal\nBourg,01000\n")
    with pytest.raises(sa.exc.DBAPIError):
        run_import(engine, path, settings, ImportOptions(profile="cities"))
    engine.dispose()
    assert migrate.current_revision(db_url) is None


def test_xlsx_with_title_rows_numbers_and_dates(engine, settings, tmp_path):
    from datetime import date

    from openpyxl import Workbook

    workbook = Workbook()
    notes = workbook.active
    notes.title = "Notes"
    notes["A1"] = "rien à importer ici"
    sheet = workbook.create_sheet("Entreprises")
    sheet["A1"] = "Export annuaire"
    sheet.append([])
    sheet.append(["SIREN", "Nom", "Code postal", "Date de création", "Latitude", "Actif"])
    sheet.append([732829320, "Boulangerie", 1000, date(2001, 2, 3), 45.75, 1])
    sheet.append([None, "Traiteur", "69002", "15/09/2015", "45,7601", "non"])
    sheet.append([None, "Sans date", 69003, 36526, None, None])
    path = tmp_path / "entreprises.xlsx"
    workbook.save(path)

    outcome = run_import(engine, path, settings, ImportOptions(profile="businesses"))
    assert (outcome.status, outcome.sheet, outcome.inserted, outcome.invalid) == ("succeeded", "Entreprises", 3, 0)
    with engine.connect() as conn:
        rows = {r.name: r for r in conn.execute(sa.select(businesses))}
    assert rows["Boulangerie"].postal_code == "01000" and rows["Boulangerie"].siren == "732829320"
    assert rows["Boulangerie"].founded_on == date(2001, 2, 3)
    assert rows["Traiteur"].founded_on == date(2015, 9, 15) and rows["Traiteur"].latitude == pytest.approx(45.7601)
    assert rows["Sans date"].founded_on == date(2000, 1, 1)  # Excel serial 36526
    assert rows["Traiteur"].is_active is False


def test_new_clients_reach_the_hook_and_messages_follow_the_language(engine, settings, tmp_path, monkeypatch):
    from dataclasses import replace

    from nightshift.imports import hooks

    seen: list[tuple[int, ...]] = []
    monkeypatch.setattr(hooks, "NEW_CLIENT_HOOKS", [lambda conn, ids, import_id: seen.append(tuple(ids))])
    english = replace(settings, lang="en")
    path = write(tmp_path / "clients.csv", "telephone;prenom;couleur\n70123456;Awa;bleu\n0612345678;Jean;vert\n")
    outcome = run_import(engine, path, english, ImportOptions(profile="clients"))
    assert outcome.errors[0]["message"].startswith("Invalid phone number in 'telephone' for region ML")
    assert outcome.unknown_columns == ["couleur"] and "unknown columns ignored: couleur" in outcome.message
    with engine.connect() as conn:
        [awa] = conn.execute(sa.select(clients.c.id)).scalars()
    assert seen == [(awa,)]

    run_import(engine, path, english, ImportOptions(profile="clients"))
    assert seen == [(awa,)], "a re-import inserts nobody: the hook is not called again"


def test_concurrent_imports_on_sqlite_never_hit_database_is_locked(engine, settings, tmp_path):
    import threading

    files = []
    for i in range(4):
        rows = [f"Ville {i}-{j};{10000 + j:05d}" for j in range(3000)]
        files.append(write(tmp_path / f"villes{i}.csv", "nom;code_postal\n" + "\n".join(rows) + "\n"))
    outcomes, failures = [], []

    def work(path):
        try:
            outcomes.append(run_import(engine, path, settings, ImportOptions(profile="cities")))
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(p,)) for p in files]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert sorted(o.inserted for o in outcomes) == [3000] * 4
    assert count(engine, cities) == 12000


def test_the_owning_accounts_phone_region_applies(engine, settings, tmp_path):
    """National numbers are read in the account's region (accounts.phone_region), else the default."""
    from nightshift.db.schema import accounts

    with engine.begin() as conn:
        french = conn.execute(accounts.insert().values(slug="paris", name="Paris", phone_region="FR")
                              .returning(accounts.c.id)).scalar_one()
    path = write(tmp_path / "clients.csv", "telephone;prenom\n06 12 34 56 78;Jean\n")
    by_default = run_import(engine, path, settings, ImportOptions(profile="clients"))
    assert (by_default.status, by_default.errors[0]["code"]) == ("failed", "invalid_phone")
    for_the_account = run_import(engine, path, settings, ImportOptions(profile="clients", account_id=french))
    assert (for_the_account.status, for_the_account.inserted) == ("succeeded", 1)
    with engine.connect() as conn:
        assert conn.execute(sa.select(clients.c.phone)).scalar_one() == "+33612345678"


def test_columns_a_file_does_not_have_keep_their_values(engine, settings, tmp_path):
    """An update writes the columns the file has (empty cells included); the others keep what an earlier
    import stored. A file that changes nothing it states leaves the row unchanged."""
    full = write(tmp_path / "entreprises.csv",
                 "siren;nom;categorie;latitude;longitude;email\n"
                 "732829320;Boulangerie Dupont;Boulangerie;48,8566;2,3522;contact@dupont.fr\n")
    assert run_import(engine, full, settings, ImportOptions(profile="businesses")).inserted == 1

    export = write(tmp_path / "export.csv", FOX_HEADER + "\n732829320,Boulangerie Dupont,,,,,,,,,,,oui\n")
    outcome = run_import(engine, export, settings, ImportOptions(profile="businesses"))
    assert (outcome.inserted, outcome.updated, outcome.unchanged) == (0, 1, 0)  # is_active and email are new
    with engine.connect() as conn:
        row = conn.execute(sa.select(businesses, categories.c.slug.label("category"))
                           .select_from(businesses.outerjoin(categories))).one()
    assert (row.category, row.latitude, row.longitude) == ("boulangerie", 48.8566, 2.3522)  # not in the export
    assert row.email is None and row.is_active is True  # in the export: its (empty) cells are what it says

    same = write(tmp_path / "noms.csv", "siren;nom\n732829320;Boulangerie Dupont\n")
    again = run_import(engine, same, settings, ImportOptions(profile="businesses"))
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 1)


def test_a_new_category_clears_a_sub_category_the_file_does_not_name(engine, settings, tmp_path):
    first = write(tmp_path / "a.csv", "nom;siren;categorie;sous_categorie\nChez Awa;732829320;Alimentation;"
                                      "Boulangerie\n")
    run_import(engine, first, settings, ImportOptions(profile="businesses"))
    moved = write(tmp_path / "b.csv", "nom;siren;categorie\nChez Awa;732829320;Garages\n")
    outcome = run_import(engine, moved, settings, ImportOptions(profile="businesses"))
    assert outcome.updated == 1
    with engine.connect() as conn:
        row = conn.execute(sa.select(categories.c.slug, businesses.c.subcategory_id)
                           .select_from(businesses.join(categories))).one()
    assert tuple(row) == ("garages", None)  # never a Boulangerie sub-category under Garages


def test_clients_keep_the_fields_a_later_file_leaves_out(engine, settings, tmp_path):
    first = write(tmp_path / "clients.csv", "telephone;prenom;email\n70 12 34 56;Awa;awa@exemple.ml\n")
    run_import(engine, first, settings, ImportOptions(profile="clients"))
    names = write(tmp_path / "prenoms.csv", "telephone;prenom\n70 12 34 56;Awa Kadia\n")
    outcome = run_import(engine, names, settings, ImportOptions(profile="clients"))
    phones = write(tmp_path / "numeros.csv", "telephone\n+223 70 12 34 56\n")
    only_key = run_import(engine, phones, settings, ImportOptions(profile="clients"))

    assert (outcome.updated, only_key.unchanged) == (1, 1)
    with engine.connect() as conn:
        client = conn.execute(sa.select(clients)).one()
    assert (client.first_name, client.email) == ("Awa Kadia", "awa@exemple.ml")


def test_the_merge_sets_created_at_on_insert_and_updated_at_on_change_only(engine, settings, tmp_path):
    def written_when(moment: datetime) -> str:
        utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)  # SQLite: naive UTC
        return "just now" if abs(utc - datetime.now(UTC)) < timedelta(minutes=5) else utc.isoformat()

    first = write(tmp_path / "a.csv", "siren;nom\n732829320;Boulangerie Dupont\n552100554;Garage Martin\n")
    run_import(engine, first, settings, ImportOptions(profile="businesses"))
    long_ago = datetime(2020, 1, 1, tzinfo=UTC)
    with engine.begin() as conn:
        fresh = conn.execute(sa.select(businesses.c.created_at, businesses.c.updated_at)).all()
        conn.execute(businesses.update().values(created_at=long_ago, updated_at=long_ago))
    assert {(written_when(created), written_when(updated)) for created, updated in fresh} == {("just now", "just now")}
    assert len({created for created, _ in fresh}) == 1  # one write time for the whole merge

    second = write(tmp_path / "b.csv", "siren;nom\n732829320;Boulangerie Dupont\n552100554;Garage Martin et Fils\n"
                                       "380129866;Pharmacie du Centre\n")
    outcome = run_import(engine, second, settings, ImportOptions(profile="businesses"))
    assert (outcome.inserted, outcome.updated, outcome.unchanged) == (1, 1, 1)
    with engine.connect() as conn:
        rows = {name: (written_when(created), written_when(updated)) for name, created, updated in conn.execute(
            sa.select(businesses.c.name, businesses.c.created_at, businesses.c.updated_at))}
    before = long_ago.isoformat()
    assert rows == {"Boulangerie Dupont": (before, before), "Garage Martin et Fils": (before, "just now"),
                    "Pharmacie du Centre": ("just now", "just now")}


def test_values_beyond_the_columns_are_row_errors_on_both_databases(engine, settings, tmp_path):
    """A population past the INTEGER column and a name-based key past natural_key's 300 characters
    fail neither the file nor the database: the first is the row's out_of_range error, the second a
    key shortened with a hash of the whole (two such names stay two businesses)."""
    villes = write(tmp_path / "villes.csv", "nom;code_postal;population\nLyon;69001;522250\nGéante;75001;3000000000\n")
    cities_outcome = run_import(engine, villes, settings, ImportOptions(profile="cities"))
    assert (cities_outcome.status, cities_outcome.inserted, cities_outcome.invalid) == ("partial", 1, 1)
    assert [(e["line"], e["code"]) for e in cities_outcome.errors] == [(3, "out_of_range")]
    assert "2147483647" in cities_outcome.errors[0]["message"]

    name, city = "Société " + "très " * 47 + "longue", "Saint-" + "Rémy-" * 47 + "de-Provence"
    rows = [f"{name} {n};{city}" for n in ("A", "B")]
    long_keys = write(tmp_path / "entreprises.csv", "nom;ville\n" + "\n".join(rows) + "\n")
    outcome = run_import(engine, long_keys, settings, ImportOptions(profile="businesses"))
    assert (outcome.status, outcome.inserted) == ("succeeded", 2)
    with engine.connect() as conn:
        keys = conn.execute(sa.select(businesses.c.natural_key)).scalars().all()
    assert len(set(keys)) == 2 and all(len(k) == 300 and k.startswith("name:societe-tres-tres") for k in keys)
    again = run_import(engine, long_keys, settings, ImportOptions(profile="businesses"))
    assert (again.inserted, again.unchanged) == (0, 2)


def test_a_file_missing_its_key_column_is_not_taken_for_another_profile(engine, settings, tmp_path):
    """`prenom;nom;email` holds a field businesses require (nom), but clients recognise all three: a
    clients file without telephone. Nothing is imported, and the message says so."""
    path = write(tmp_path / "contacts.csv", "prenom;nom;email\nAwa;Traoré;awa@exemple.ml\n")
    outcome = run_import(engine, path, settings, ImportOptions())
    assert (outcome.status, outcome.inserted, outcome.profile) == ("failed", 0, None)
    assert "looks like a clients file without its required column(s) telephone" in outcome.message
    assert count(engine, businesses) == 0

    businesses_file = write(tmp_path / "entreprises.csv", "nom;email;ville\nGarage Martin;a@b.fr;Lyon\n")
    assert run_import(engine, businesses_file, settings, ImportOptions()).profile == "businesses"
    # Two complete profiles: the better match wins, as before.
    cities_file = write(tmp_path / "villes.csv",
                        "nom;code_postal;ville;latitude;longitude\nLyon;69001;Lyon;45,76;4,84\n")
    assert run_import(engine, cities_file, settings, ImportOptions()).profile == "cities"


def test_the_log_keeps_the_first_detailed_errors_and_counts_them_all(engine, settings, tmp_path):
    invalid = MAX_DETAILED_ERRORS + 2_500
    lines = [f"Ville {n};{'ABCDE' if n % 2 else f'{10000 + n}'}" for n in range(2 * invalid)]
    path = write(tmp_path / "villes.csv", "nom;code_postal\n" + "\n".join(lines) + "\n")
    import_id = registered_import(engine, path, settings, "cities")
    outcome = run_import(engine, path, settings, ImportOptions(profile="cities"), import_id=import_id)

    assert (outcome.status, outcome.invalid, outcome.error_counts) == ("partial", invalid,
                                                                     {"invalid_postal_code": invalid})
    with engine.connect() as conn:
        kept = conn.execute(sa.select(import_errors.c.line).where(import_errors.c.import_id == import_id)
                            .order_by(import_errors.c.line)).scalars().all()
    assert len(kept) == MAX_DETAILED_ERRORS and kept[:2] == [3, 5]  # the first ones, by line
    assert kept[-1] == 2 * MAX_DETAILED_ERRORS + 1


def test_a_file_over_the_row_limit_is_refused_with_the_setting_named(engine, settings, tmp_path):
    path = write(tmp_path / "villes.csv", "nom;code_postal\nBourg;01000\nLyon;69001\nNice;06000\n")
    limited = replace(settings, imports=replace(settings.imports, max_rows=2))
    outcome = run_import(engine, path, limited, ImportOptions(profile="cities"))
    assert (outcome.status, outcome.inserted, outcome.unreadable) == ("failed", 0, True)
    assert "2" in outcome.message and "imports.max_rows" in outcome.message
    assert count(engine, cities) == 0


def test_the_log_says_merged_until_the_upload_has_moved_then_done(engine, settings, tmp_path):
    upload = write(settings.uploads_dir / "villes.csv", "nom;code_postal\nBourg;01000\n")
    import_id = registered_import(engine, upload, settings, "cities")
    run_import(engine, upload, settings, ImportOptions(profile="cities"), import_id=import_id, move_file=True)
    assert import_log_row(engine, import_id)["stage"] == "done" and not upload.exists()

    # processed/ unusable (a file where the folder should be): the rows are in, the upload is not moved.
    second = write(settings.uploads_dir / "villes2.csv", "nom;code_postal\nLyon;69001\n")
    blocked = replace(settings, data_dir=tmp_path / "blocked")
    blocked.data_dir.mkdir()
    (blocked.data_dir / "processed").write_text("not a folder")
    second_id = registered_import(engine, second, settings, "cities")
    outcome = run_import(engine, second, blocked, ImportOptions(profile="cities"), import_id=second_id,
                         move_file=True)
    row = import_log_row(engine, second_id)
    assert (row["status"], row["stage"], row["inserted"]) == ("succeeded", "merged", 1) and second.exists()
    assert "could not be moved" in row["message"] and str(second) in outcome.message
    # The upload sensor leaves it alone (it is registered), rather than importing it again as a duplicate.
    assert str(second) in intake._in_flight_paths(engine, settings.uploads_dir)


def import_log_row(engine, import_id: int) -> dict:
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(imports).where(imports.c.id == import_id)).mappings().one())
