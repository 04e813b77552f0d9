"""`nightshift profiles`, `profiles show P`, `profiles template P`, in process; a template imports cleanly."""

import json

import openpyxl
import pytest

from nightshift.config import load_settings
from nightshift.imports.profiles import PROFILES
from nightshift.imports.service import ImportOptions, run_import


@pytest.fixture
def invoke(invoke_cli):
    return invoke_cli


def test_the_list_names_each_profile_with_its_columns_as_a_file_writes_them(invoke):
    result = invoke("profiles", "--json")
    assert result.exit_code == 0, result.output
    listing = json.loads(result.output)
    assert [entry["name"] for entry in listing] == list(PROFILES)
    by_name = {entry["name"]: entry for entry in listing}
    assert by_name["clients"] == {"name": "clients", "required": ["telephone"],
                                  "optional": ["prenom", "nom", "email", "region", "ville"]}
    assert by_name["cities"]["required"] == ["nom | villes", "code_postal | villes"]
    assert by_name["subcategories"]["required"] == ["categorie", "nom"]
    for entry in listing:
        named = {f.name for f in PROFILES[entry["name"]].fields}
        assert {c for r in entry["required"] for c in r.split(" | ")} | set(entry["optional"]) == named

    human = invoke("profiles", lang="fr")
    assert human.exit_code == 0
    assert "clients — obligatoires : telephone ; facultatives : prenom, nom, email, region, ville" in human.output


def test_show_gives_spellings_kinds_and_rules_in_the_language_of_the_setting(invoke):
    result = invoke("profiles", "show", "cities", "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["required"] == ["nom | villes", "code_postal | villes"] and shown["version"] == "1"
    columns = {c["name"]: c for c in shown["columns"]}
    assert columns["code_postal"]["spellings"] == ["code_postal", "cp", "postal_code", "zip", "code_postal_commune"]
    assert (columns["latitude"]["kind"], columns["latitude"]["min_value"], columns["latitude"]["max_value"]) == (
        "decimal", -90, 90)

    english = invoke("profiles", "show", "clients").output
    assert "required columns:\n  telephone: phone number" in english
    assert "accepted headers: telephone, phone, tel, numero, whatsapp" in english
    french = invoke("profiles", "show", "cities", lang="fr").output
    assert "colonnes obligatoires :\n  l'une de : nom | villes\n  nom: texte, 255 caractères au plus" in french
    assert "latitude: nombre (12,5 ou 12.5), entre -90 et 90" in french


def test_an_unknown_profile_is_bad_usage_naming_the_known_ones(invoke):
    for args in (["show", "companies"], ["template", "companies"]):
        result = invoke("profiles", *args, lang="fr")
        assert result.exit_code == 2
        assert "« companies »" in result.output and ", ".join(PROFILES) in result.output


def test_a_template_goes_to_stdout_as_csv(invoke):
    result = invoke("profiles", "template", "clients")
    assert result.exit_code == 0
    assert result.output.splitlines() == ["telephone;prenom;nom;email;region;ville",
                                          "'+22366554433;Awa;Traoré;awa.traore@exemple.ml;Bamako;Bamako"]


@pytest.mark.parametrize("file_format", ["csv", "xlsx"])
def test_every_template_has_every_column_and_its_example_row_imports_cleanly(db, db_url, tmp_path, file_format,
                                                                           invoke, sealed_env):
    env = {**sealed_env, "NIGHTSHIFT_DATABASE_URL": db_url}
    settings = load_settings({**env, "NIGHTSHIFT_LANG": "en"})
    settings.ensure_data_dirs()
    for name, profile in PROFILES.items():
        path = tmp_path / f"{name}.{file_format}"
        result = invoke("profiles", "template", name, "--output", str(path), env=env)
        assert result.exit_code == 0, result.output
        assert result.output == f"{name} template written to {path}: the header and one example row, to replace " \
                                "with your rows\n"
        header = (next(openpyxl.load_workbook(path).active.iter_rows(values_only=True)) if file_format == "xlsx"
                  else path.read_text(encoding="utf-8-sig").splitlines()[0].split(";"))
        assert list(header) == [f.name for f in profile.fields]
        outcome = run_import(db, path, settings, ImportOptions(profile=name))
        assert (outcome.status, outcome.rows_total, outcome.invalid, outcome.unknown_columns) == (
            "succeeded", 1, 0, []), (name, outcome.errors)
        assert outcome.inserted + outcome.updated == 1
