"""`nightshift import FILE --map "HEADER=COLUMN"`: a file whose headers match no accepted spelling imports
once they are mapped; a bad map is bad usage (exit 2) in the language of the setting."""

import json
from pathlib import Path

import sqlalchemy as sa

from nightshift.db import migrate
from nightshift.db.engine import create_engine
from nightshift.db.schema import clients
from tests.conftest import nightshift

CONTACTS = "Portable;Prénom;Nom de famille\n+22370123456;Awa;Traoré\n+22376543210;Moussa;Keïta\n"
CLIENT_COLUMNS = "clients: telephone, prenom, nom, email, region, ville"


def contacts(tmp_path: Path) -> Path:
    path = tmp_path / "contacts.csv"
    path.write_text(CONTACTS, encoding="utf-8")
    return path


def test_an_import_with_maps_stores_the_mapped_columns(cli_env, db_url, tmp_path):
    migrate.upgrade(db_url)
    path = contacts(tmp_path)
    maps = ("--map", "Portable=telephone", "--map", "nom de famille=nom")
    dry_run = nightshift("import", str(path), *maps, "--dry-run", "--json", env=cli_env, cwd=tmp_path)
    assert dry_run.returncode == 0, dry_run.stderr
    dry = json.loads(dry_run.stdout)
    assert (dry["status"], dry["dry_run"], dry["inserted"]) == ("succeeded", True, 2)
    result = nightshift("import", str(path), *maps, "--json", env=cli_env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["status"], summary["profile"], summary["inserted"]) == ("succeeded", "clients", 2)
    engine = create_engine(db_url)
    with engine.connect() as conn:
        stored = sorted(conn.execute(sa.select(clients.c.phone, clients.c.first_name, clients.c.last_name)).all())
    engine.dispose()
    assert stored == [("+22370123456", "Awa", "Traoré"), ("+22376543210", "Moussa", "Keïta")]


def test_a_map_to_an_unknown_column_is_refused_naming_the_known_ones(invoke_cli, tmp_path):
    path = str(contacts(tmp_path))
    for lang, expected in (
            ("en", f"Error: --map 'Portable=phone_number': phone_number is not a column of profile clients "
                   f"(known: {CLIENT_COLUMNS})"),
            ("fr", f"Error: --map « Portable=phone_number » : phone_number n'est pas une colonne du profil clients "
                   f"(colonnes connues : {CLIENT_COLUMNS.replace(':', ' :')}).")):
        refused = invoke_cli("import", path, "--profile", "clients", "--map", "Portable=phone_number", lang=lang)
        assert (refused.exit_code, refused.output.strip()) == (2, expected)
    anywhere = invoke_cli("import", path, "--map", "Portable=phone_number")
    assert anywhere.exit_code == 2
    assert "phone_number is not a column of any profile (known: businesses: nom, nom_commercial," in anywhere.output
    assert CLIENT_COLUMNS in anywhere.output


def test_a_map_without_an_equals_sign_is_refused(invoke_cli, tmp_path):
    refused = invoke_cli("import", str(contacts(tmp_path)), "--map", "Portable", lang="fr")
    assert refused.exit_code == 2
    assert refused.output.strip() == ("Error: --map « Portable » : attendu « en-tête=colonne », l'en-tête tel que le "
                                      "fichier l'écrit et la colonne du profil (ex. --map \"Raison sociale=nom\").")


def test_an_accounts_map_to_an_unknown_column_is_a_configuration_error(invoke_cli, sealed_env, tmp_path):
    Path(sealed_env["NIGHTSHIFT_CONFIG"]).write_text("imports:\n  column_maps:\n    paris:\n      Portable: mobile\n")
    refused = invoke_cli("import", str(contacts(tmp_path)))
    assert refused.exit_code == 2
    assert refused.output.startswith("Error: configuration error: imports.column_maps.paris.Portable: 'mobile' is "
                                     "not a field of any profile (known: businesses: nom,")
