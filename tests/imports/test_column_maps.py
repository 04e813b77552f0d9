"""Column maps: a file whose headers match no accepted spelling imports once its headers are mapped to the
profile's columns, by the command (Settings.column_map, the CLI's --map) or by its account's
imports.column_maps in the YAML settings; a map naming an unknown column is refused naming the known ones."""

from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa

from nightshift.config import ConfigError, load_settings
from nightshift.db.schema import accounts, businesses, clients
from nightshift.imports.service import ImportOptions, run_import

# No profile matches this header: `Portable` and `Nom de famille` are no spelling of any column.
CONTACTS = "Portable;Prénom;Nom de famille\n+22370123456;Awa;Traoré\n+22376543210;Moussa;Keïta\n"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def stored_clients(engine) -> list[tuple]:
    with engine.connect() as conn:
        return sorted(conn.execute(sa.select(clients.c.phone, clients.c.first_name, clients.c.last_name)).all())


def account(engine, slug: str) -> int:
    with engine.begin() as conn:
        return conn.execute(accounts.insert().values(slug=slug, name=slug.title())
                            .returning(accounts.c.id)).scalar_one()


def test_a_file_no_profile_matches_is_detected_and_imported_once_its_headers_are_mapped(db, settings, tmp_path):
    path = write(tmp_path / "contacts.csv", CONTACTS)
    unmapped = run_import(db, path, settings)
    assert (unmapped.status, unmapped.failure_kind) == ("failed", "bad_input")
    assert "no import profile matches" in unmapped.message

    # Matched as spellings are: case, accents and spaces aside.
    mapped = replace(settings, column_map={"portable": "telephone", "NOM DE FAMILLE": "nom"})
    outcome = run_import(db, path, mapped)
    assert (outcome.status, outcome.profile, outcome.inserted) == ("succeeded", "clients", 2)
    assert outcome.unknown_columns == []
    assert stored_clients(db) == [("+22370123456", "Awa", "Traoré"), ("+22376543210", "Moussa", "Keïta")]


def test_row_errors_and_the_report_name_a_mapped_column_as_the_file_writes_it(db, settings, tmp_path):
    path = write(tmp_path / "contacts.csv", CONTACTS + "abc;Fanta;Diarra\n")
    outcome = run_import(db, path, replace(settings, column_map={"Portable": "telephone"}),
                         ImportOptions(profile="clients"))
    assert (outcome.status, outcome.inserted, outcome.invalid) == ("partial", 2, 1)
    [error] = outcome.errors
    assert (error["line"], error["column"], error["code"]) == (4, "Portable", "invalid_phone")
    assert outcome.unknown_columns == ["Nom de famille"]
    assert Path(outcome.error_report).read_text(encoding="utf-8-sig").splitlines()[0] == (
        "Portable;Prénom;Nom de famille;_ligne;_colonne;_erreur")


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_a_command_map_to_a_column_its_profile_lacks_or_of_a_header_the_file_lacks_is_refused(db, settings,
                                                                                           tmp_path, lang):
    path = write(tmp_path / "contacts.csv", CONTACTS)
    run_settings = replace(settings, lang=lang)
    not_a_column = run_import(db, path, replace(run_settings, column_map={"Portable": "siret"}),
                              ImportOptions(profile="clients"))
    assert (not_a_column.status, not_a_column.failure_kind) == ("failed", "bad_input")
    known = "telephone, prenom, nom, email, region, ville"
    assert not_a_column.message == {
        "fr": f"--map « Portable=siret » : siret n'est pas une colonne du profil clients (colonnes connues : "
              f"clients : {known}).",
        "en": f"--map 'Portable=siret': siret is not a column of profile clients (known: clients: {known})"}[lang]
    absent = run_import(db, path, replace(run_settings, column_map={"Portable": "telephone", "Mobile": "nom"}))
    assert (absent.status, absent.failure_kind) == ("failed", "bad_input")
    assert absent.message == {
        "fr": "contacts.csv : --map nomme des en-têtes absents du fichier : Mobile ; en-têtes trouvés : Portable, "
              "Prénom, Nom de famille.",
        "en": "contacts.csv: --map names headers the file does not have: Mobile; headers found: Portable, Prénom, "
              "Nom de famille"}[lang]
    assert stored_clients(db) == []


def with_yaml(settings, tmp_path: Path, text: str):
    config = write(tmp_path / "column-maps.yaml", text)
    loaded = load_settings({"NIGHTSHIFT_DATABASE_URL": settings.database_url, "NIGHTSHIFT_LANG": "en",
                            "NIGHTSHIFT_DATA_DIR": str(settings.data_dir), "NIGHTSHIFT_CONFIG": str(config)})
    return loaded


ACCOUNT_MAPS = """
imports:
  column_maps:
    paris:
      Portable: telephone
      Nom de famille: nom
      Société: nom
      N° SIRET: siret   # for the account's businesses files: left out of its clients files
"""


def test_an_accounts_yaml_map_applies_to_its_imports_only(db, settings, tmp_path):
    """As the upload path runs an import of data/uploads/<account>/…: the account's id, no --map."""
    maps = with_yaml(settings, tmp_path, ACCOUNT_MAPS)
    paris, lyon = account(db, "paris"), account(db, "lyon")
    path = write(tmp_path / "contacts.csv", CONTACTS)
    other_account = run_import(db, path, maps, ImportOptions(account_id=lyon))
    assert (other_account.status, other_account.failure_kind) == ("failed", "bad_input")
    outcome = run_import(db, path, maps, ImportOptions(account_id=paris))
    assert (outcome.status, outcome.profile, outcome.inserted) == ("succeeded", "clients", 2)
    assert stored_clients(db) == [("+22370123456", "Awa", "Traoré"), ("+22376543210", "Moussa", "Keïta")]

    businesses_file = write(tmp_path / "entreprises.csv", "Société;N° SIRET\nBoulangerie Dupont;73282932000074\n")
    imported = run_import(db, businesses_file, maps, ImportOptions(account_id=paris, profile="businesses"))
    assert (imported.status, imported.inserted) == ("succeeded", 1)
    with db.connect() as conn:
        assert conn.execute(sa.select(businesses.c.name, businesses.c.siret)).one() == (
            "Boulangerie Dupont", "73282932000074")


def test_the_commands_map_wins_over_the_accounts_for_the_same_header(db, settings, tmp_path):
    maps = replace(with_yaml(settings, tmp_path, ACCOUNT_MAPS), column_map={"nom de famille": "prenom"})
    path = write(tmp_path / "contacts.csv", "Portable;Nom de famille\n+22370123456;Awa\n")
    outcome = run_import(db, path, maps, ImportOptions(account_id=account(db, "paris")))
    assert (outcome.status, outcome.inserted) == ("succeeded", 1)
    assert stored_clients(db) == [("+22370123456", "Awa", None)]


def test_an_accounts_map_to_an_unknown_column_is_a_configuration_error_naming_the_key(db, settings, tmp_path):
    with pytest.raises(ConfigError, match=r"imports\.column_maps\.paris: expected a mapping"):
        with_yaml(settings, tmp_path, "imports:\n  column_maps:\n    paris: [nom]\n")
    maps = with_yaml(settings, tmp_path, "imports:\n  column_maps:\n    paris:\n      Raison sociale: raison\n")
    path = write(tmp_path / "contacts.csv", CONTACTS)
    with pytest.raises(ConfigError) as refused:
        run_import(db, path, maps, ImportOptions(profile="clients"))
    assert str(refused.value).startswith(
        "imports.column_maps.paris.Raison sociale: 'raison' is not a field of any profile (known: businesses: nom, ")
    assert "clients: telephone, prenom, nom, email, region, ville" in str(refused.value)
