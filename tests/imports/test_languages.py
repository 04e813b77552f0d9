"""One language per run: bad files imported under NIGHTSHIFT_LANG=fr and =en tell everything a person
reads (the failure, the summary, each row's error, the error report) in that language, naming the
columns as the file or the profile writes them."""

import csv
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa

from nightshift.db.schema import imports
from nightshift.imports import intake
from nightshift.imports.files import sha256_of
from nightshift.imports.service import ImportOptions, run_import
from tests.imports.bad_files import truncated_xlsx
from tests.imports.languages import foreign_words

CLIENT_PHONE = {"fr": "telephone (orthographes acceptées : telephone, phone, tel, numero, whatsapp)",
                "en": "telephone (accepted spellings: telephone, phone, tel, numero, whatsapp)"}


# name, content, options, settings.imports changes, {lang: what the message says}
BAD_FILES = [
    ("clients.csv", "prenom;nom;email\nAwa;Traoré;awa@exemple.ml\n", {"profile": "clients"}, {}, {
        "fr": f"clients.csv : colonne(s) obligatoire(s) absente(s) : {CLIENT_PHONE['fr']} ; en-têtes trouvés ligne 1 : "
              "prenom, nom, email. Nommez la colonne d'une des orthographes acceptées (majuscules, accents et espaces "
              "sont sans importance).",
        "en": f"clients.csv: required column(s) missing: {CLIENT_PHONE['en']}; headers found on line 1: prenom, nom, "
              "email. Name the column with one of the accepted spellings (case, accents and spaces do not matter)"}),
    ("contacts.csv", "prenom;nom;email\nAwa;Traoré;awa@exemple.ml\n", {}, {}, {
        "fr": f"il ressemble à un fichier clients sans sa ou ses colonnes obligatoires {CLIENT_PHONE['fr']} ; "
              "choisissez-en un avec --profile",
        "en": f"it looks like a clients file without its required column(s) {CLIENT_PHONE['en']}; choose one with "
              "--profile"}),
    ("regions.csv", "departement;region\nAin;Auvergne-Rhône-Alpes\n", {"profile": "cities"}, {}, {
        "fr": "nom (orthographes acceptées : nom, ville, commune, nom_commune, name, city) ou villes (orthographes "
              "acceptées : villes, ville_cp, nom_cp)",
        "en": "nom (accepted spellings: nom, ville, commune, nom_commune, name, city) or villes (accepted spellings: "
              "villes, ville_cp, nom_cp)"}),
    ("garbage.csv", bytes(range(256)) * 64, {"profile": "cities"}, {}, {
        "fr": "garbage.csv : ce n'est pas un tableau en texte (contenu binaire) : déposez un fichier CSV ou Excel.",
        "en": "garbage.csv: this is not a text table (binary content); upload a CSV or an Excel file"}),
    ("vide.csv", b"", {"profile": "cities"}, {}, {
        "fr": "vide.csv : le fichier est vide", "en": "vide.csv: the file is empty"}),
    ("villes.xlsx", truncated_xlsx(), {"profile": "cities"}, {}, {
        "fr": "villes.xlsx : le classeur est endommagé ou tronqué : exportez-le de nouveau.",
        "en": "villes.xlsx: the spreadsheet is damaged or truncated; export it again"}),
    ("gros.csv", "nom;code_postal\n" + "Bourg;01000\n" * 2000, {"profile": "cities"}, {"max_bytes": 1000}, {
        "fr": "gros.csv : 24\u202f016 octets, au-delà de la limite de 1\u202f000 octets (réglage imports.max_bytes)",
        "en": "gros.csv: 24,016 bytes is over the limit of 1,000 bytes (setting imports.max_bytes)"}),
    ("guillemets.csv", 'nom;code_postal\nLyon;69001\n"Bron;69500\nVénissieux;69200\n', {"profile": "cities"}, {}, {
        "fr": "guillemets.csv : ligne 3 : un champ entre guillemets", "en": "guillemets.csv: line 3: a quoted field"}),
    ("accents.csv", b"nom;code_postal\nLyon;69001\nB\x81ziers;34500\n", {"profile": "cities"}, {}, {
        "fr": "accents.csv : ligne 3 : l'encodage du texte n'est ni UTF-8 ni Windows-1252",
        "en": "accents.csv: line 3: the text encoding is neither UTF-8 nor Windows-1252"}),
    ("entete.csv", "nom;code_postal;departement\n", {"profile": "cities"}, {}, {
        "fr": "entete.csv : l'en-tête (ligne 1) n'est suivi d'aucune ligne de données.",
        "en": "entete.csv: the header (line 1) has no data rows"}),
    ("codes.csv", "nom;code_postal\nLyon;690\nBron;695\nVaulx;69120\n", {"profile": "cities"}, {}, {
        "fr": "2 lignes invalides sur 3 (67%, plus de 50% : imports.abort_invalid_ratio) : rien n'a été écrit",
        "en": "2 of 3 rows invalid (67%, more than 50%: imports.abort_invalid_ratio): nothing written"}),
    ("strict.csv", "nom;code_postal\nLyon;690\nBron;69500\nVaulx;69120\n", {"profile": "cities", "strict": True}, {}, {
        "fr": "--strict : 1 ligne(s) invalide(s), rien n'a été écrit",
        "en": "--strict: 1 invalid row(s), nothing written"}),
    ("villes.csv", "nom;code_postal\nLyon;69001\n", {"profile": "villages"}, {}, {
        "fr": "profil d'import inconnu « villages » (profils connus : businesses, categories, subcategories, cities, "
              "clients).",
        "en": "unknown profile 'villages' (known: businesses, categories, subcategories, cities, clients)"}),
]


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_a_bad_file_fails_in_the_language_of_the_run(db, settings, tmp_path, lang):
    for name, content, options, limits, expected in BAD_FILES:
        run_settings = replace(settings, lang=lang, imports=replace(settings.imports, **limits))
        path = tmp_path / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
        outcome = run_import(db, path, run_settings, ImportOptions(**options))
        assert (outcome.status, outcome.failure_kind) == ("failed", "bad_input"), name
        assert expected[lang] in outcome.message, name
        assert foreign_words(outcome.message, lang) == [], outcome.message


def _report_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle, delimiter=";"))


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_row_errors_summary_and_report_speak_the_language_of_the_run_and_name_the_file_s_header(db, settings,
                                                                                               tmp_path, lang):
    path = tmp_path / "clients.csv"
    path.write_text("Téléphone;Prénom;Couleur\nabc;Awa;bleu\n06 12 34 56 78;Jean;vert\n+33 6 12 34 56;Claire;\n"
                    "70 12 34 56;Moussa;\n76 12 34 57;Fatou;\n=1+2;Zed;\n", encoding="utf-8")
    tolerant = replace(settings, lang=lang, imports=replace(settings.imports, abort_invalid_ratio=1.0))

    outcome = run_import(db, path, tolerant, ImportOptions(profile="clients"))

    assert (outcome.status, outcome.inserted, outcome.invalid) == ("partial", 2, 4)
    assert outcome.message == {
        "fr": "6 ligne(s) : 2 ajoutée(s), 0 mise(s) à jour, 0 inchangée(s), 4 invalide(s) ; colonnes inconnues "
              "ignorées : Couleur",
        "en": "6 rows: 2 inserted, 0 updated, 0 unchanged, 4 invalid; unknown columns ignored: Couleur"}[lang]
    errors = {e["value"]: e for e in outcome.errors}
    assert {e["column"] for e in outcome.errors} == {"Téléphone"}
    assert {e["code"] for e in outcome.errors} == {"invalid_phone"}  # the code stays; the advice fits the value
    not_a_phone = {"fr": "« Téléphone » ne contient pas un numéro de téléphone",
                   "en": "'Téléphone' does not hold a phone number"}[lang]
    national = {"fr": "Numéro de téléphone invalide dans « Téléphone » pour la région ML : ajoutez l'indicatif "
                      "international",
                "en": "Invalid phone number in 'Téléphone' for region ML: add the international prefix"}[lang]
    international = {"fr": "Numéro de téléphone invalide dans « Téléphone » : ce numéro n'existe pas pour son "
                           "indicatif international",
                     "en": "Invalid phone number in 'Téléphone': no such number exists for its international "
                           "prefix"}[lang]
    assert errors["abc"]["message"].startswith(not_a_phone)
    assert errors["=1+2"]["message"].startswith(not_a_phone)
    assert errors["06 12 34 56 78"]["message"].startswith(national)
    assert errors["+33 6 12 34 56"]["message"].startswith(international)
    advice = {"fr": "indicatif international (+33", "en": "international prefix (+33"}[lang]
    assert [value for value, e in errors.items() if advice in e["message"]] == ["06 12 34 56 78"]
    for error in outcome.errors:
        assert foreign_words(error["message"], lang) == [], error["message"]

    report = _report_rows(Path(outcome.error_report))
    assert [row["Téléphone"] for row in report] == ["abc", "06 12 34 56 78", "'+33 6 12 34 56", "'=1+2"]
    assert [row["_colonne"] for row in report] == ["Téléphone"] * 4
    assert report[0]["_erreur"].startswith(not_a_phone)
    for row in report:
        assert foreign_words(row["_erreur"], lang) == [], row["_erreur"]
    # The corrected report goes back as is: the apostrophe that neutralised a cell changes no advice.
    again = run_import(db, Path(outcome.error_report), tolerant, ImportOptions(profile="clients"))
    assert {e["value"]: e["message"] for e in again.errors}["'+33 6 12 34 56"].startswith(international)


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_intake_tells_an_unknown_account_folder_and_a_duplicate_in_the_language_of_the_run(db, settings, lang):
    run_settings = replace(settings, lang=lang)
    uploads = []
    for relative in ("acme/cities/v.csv", "cities/a.csv", "cities/b.csv"):
        path = settings.uploads_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("nom;code_postal\nLyon;69001\n" if relative != "acme/cities/v.csv" else "nom\nBron\n",
                        encoding="utf-8")
        uploads.append((intake.classify(path, settings.uploads_dir), sha256_of(path)))
    rejected, first, duplicate = intake.register_many(db, uploads, run_settings)
    with db.connect() as conn:
        texts = dict(conn.execute(sa.select(imports.c.id, imports.c.message)).all())
    assert texts[rejected.import_id] == {
        "fr": "dossier de compte inconnu « acme » : créez le compte ou déplacez le fichier dans uploads/<profil>/",
        "en": "unknown account folder 'acme': create the account or move the file to uploads/<profile>/"}[lang]
    assert texts[duplicate.import_id] == {
        "fr": f"même contenu que l'import {first.import_id} (a.csv, received)",
        "en": f"same content as import {first.import_id} (a.csv, received)"}[lang]
