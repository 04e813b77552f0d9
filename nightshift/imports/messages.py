"""Error codes of the importer and their messages in French (default) and English.

Codes are stable (tests, JSON output and the error report rely on them); messages may be reworded.
"""

from __future__ import annotations

MESSAGES: dict[str, dict[str, str]] = {
    "required": {
        "fr": "Valeur obligatoire manquante dans la colonne « {column} ».",
        "en": "Required value missing in column '{column}'.",
    },
    "too_long": {
        "fr": "Texte trop long dans « {column} » ({length} caractères, maximum {max_length}).",
        "en": "Text too long in '{column}' ({length} characters, maximum {max_length}).",
    },
    "invalid_integer": {
        "fr": "« {column} » doit être un nombre entier.",
        "en": "'{column}' must be a whole number.",
    },
    "invalid_number": {
        "fr": "« {column} » doit être un nombre (ex. 12,5).",
        "en": "'{column}' must be a number (e.g. 12.5).",
    },
    "out_of_range": {
        "fr": "« {column} » hors limites (attendu entre {min_value} et {max_value}).",
        "en": "'{column}' out of range (expected between {min_value} and {max_value}).",
    },
    "invalid_date": {
        "fr": "Date invalide dans « {column} » (formats acceptés : jj/mm/aaaa, aaaa-mm-jj, date Excel).",
        "en": "Invalid date in '{column}' (accepted: dd/mm/yyyy, yyyy-mm-dd, Excel date).",
    },
    "invalid_boolean": {
        "fr": "« {column} » doit valoir oui/non, vrai/faux, 1/0.",
        "en": "'{column}' must be yes/no, true/false, 1/0.",
    },
    "invalid_email": {
        "fr": "Adresse e-mail invalide dans « {column} ».",
        "en": "Invalid e-mail address in '{column}'.",
    },
    "invalid_url": {
        "fr": "Adresse web invalide dans « {column} ».",
        "en": "Invalid web address in '{column}'.",
    },
    "invalid_phone": {
        "fr": "Numéro de téléphone invalide dans « {column} » pour la région {region} : "
              "ajoutez l'indicatif international (+33…, +86…) s'il s'agit d'un numéro étranger.",
        "en": "Invalid phone number in '{column}' for region {region}: "
              "add the international prefix (+33…, +86…) for a foreign number.",
    },
    "invalid_siren": {
        "fr": "SIREN invalide dans « {column} » (9 chiffres, clé de contrôle Luhn).",
        "en": "Invalid SIREN in '{column}' (9 digits, Luhn check digit).",
    },
    "invalid_siret": {
        "fr": "SIRET invalide dans « {column} » (14 chiffres, clé de contrôle Luhn).",
        "en": "Invalid SIRET in '{column}' (14 digits, Luhn check digit).",
    },
    "siret_siren_mismatch": {
        "fr": "Les 9 premiers chiffres du SIRET ne correspondent pas au SIREN de la ligne.",
        "en": "The first 9 digits of the SIRET do not match the row's SIREN.",
    },
    "invalid_naf": {
        "fr": "Code NAF invalide dans « {column} » (ex. 62.01Z).",
        "en": "Invalid NAF code in '{column}' (e.g. 62.01Z).",
    },
    "invalid_postal_code": {
        "fr": "Code postal invalide dans « {column} » (5 chiffres).",
        "en": "Invalid postal code in '{column}' (5 digits).",
    },
    "invalid_city": {
        "fr": "« {column} » doit avoir la forme « Nom (code postal) ».",
        "en": "'{column}' must look like 'Name (postal code)'.",
    },
    "duplicate_key": {
        "fr": "Doublon : la ligne {winner} du fichier a la même clé ({key}) et la remplace.",
        "en": "Duplicate: line {winner} of the file has the same key ({key}) and replaces this row.",
    },
    "no_letter_or_digit": {
        "fr": "« {column} » doit contenir au moins une lettre ou un chiffre (il sert à identifier la ligne).",
        "en": "'{column}' must hold at least one letter or digit (it identifies the row).",
    },
    "unknown_category": {
        "fr": "Catégorie inconnue « {value} » (création désactivée) : créez-la d'abord ou corrigez le nom.",
        "en": "Unknown category '{value}' (creation disabled): create it first or fix the name.",
    },
    # export and profiles
    # (`nightshift export`, `nightshift profiles [show|template]`)
    "export_written": {
        "fr": "{profile} : {rows} ligne(s) exportée(s) dans {path}",
        "en": "{profile}: {rows} row(s) exported to {path}",
    },
    "export_xlsx_needs_output": {
        "fr": "--format xlsx écrit un classeur : donnez le fichier avec --output FICHIER.xlsx",
        "en": "--format xlsx writes a workbook: name the file with --output FILE.xlsx",
    },
    "export_format_mismatch": {
        "fr": "--format {format} et le fichier {path} : donnez au fichier l'extension .{format}",
        "en": "--format {format} and the file {path}: give the file the extension .{format}",
    },
    "export_unwritable_cell": {
        "fr": "ligne {line}, colonne « {column} » : un caractère de contrôle qu'un classeur XLSX ne peut pas "
              "contenir ; exportez en CSV (--format csv), qui le garde",
        "en": "line {line}, column '{column}': a control character an XLSX workbook cannot hold; export as CSV "
              "(--format csv), which keeps it",
    },
    "export_json_needs_output": {
        "fr": "--json décrit le fichier écrit : donnez-le avec --output FICHIER (sans --output, les lignes vont "
              "sur la sortie standard)",
        "en": "--json describes the file written: name it with --output FILE (without --output the rows go to "
              "standard output)",
    },
    "profiles_line": {
        "fr": "{profile} — obligatoires : {required} ; facultatives : {optional}",
        "en": "{profile} — required: {required}; optional: {optional}",
    },
    "profiles_heading": {"fr": "profil {profile} (version {version})", "en": "profile {profile} (version {version})"},
    "profiles_required": {"fr": "colonnes obligatoires :", "en": "required columns:"},
    "profiles_one_of": {"fr": "l'une de : {columns}", "en": "one of: {columns}"},
    "profiles_optional": {"fr": "colonnes facultatives :", "en": "optional columns:"},
    "profiles_spellings": {"fr": "en-têtes acceptés : {spellings}", "en": "accepted headers: {spellings}"},
    "profiles_rule_max_length": {"fr": "{max_length} caractères au plus", "en": "at most {max_length} characters"},
    "profiles_rule_range": {"fr": "entre {min_value} et {max_value}", "en": "between {min_value} and {max_value}"},
    "profiles_rule_letter_or_digit": {"fr": "au moins une lettre ou un chiffre (identifie la ligne)",
                                      "en": "at least one letter or digit (it identifies the row)"},
    "profiles_template_written": {
        "fr": "modèle {profile} écrit dans {path} : l'en-tête et une ligne d'exemple, à remplacer par vos lignes",
        "en": "{profile} template written to {path}: the header and one example row, to replace with your rows",
    },
    "profiles_kind_text": {"fr": "texte", "en": "text"},
    "profiles_kind_integer": {"fr": "nombre entier", "en": "whole number"},
    "profiles_kind_decimal": {"fr": "nombre (12,5 ou 12.5)", "en": "number (12.5 or 12,5)"},
    "profiles_kind_date": {"fr": "date (jj/mm/aaaa, aaaa-mm-jj, date Excel)",
                           "en": "date (dd/mm/yyyy, yyyy-mm-dd, Excel date)"},
    "profiles_kind_bool": {"fr": "oui/non (vrai/faux, 1/0, x coché)", "en": "yes/no (true/false, 1/0, x ticked)"},
    "profiles_kind_email": {"fr": "adresse e-mail", "en": "email address"},
    "profiles_kind_url": {"fr": "adresse web", "en": "web address"},
    "profiles_kind_phone": {"fr": "téléphone (sans indicatif du pays : celui de la région du compte)",
                            "en": "phone number (without a country code: the account's region's)"},
    "profiles_kind_siren": {"fr": "SIREN (9 chiffres)", "en": "SIREN (9 digits)"},
    "profiles_kind_siret": {"fr": "SIRET (14 chiffres)", "en": "SIRET (14 digits)"},
    "profiles_kind_naf": {"fr": "code NAF/APE (ex. 10.71C)", "en": "NAF/APE code (e.g. 10.71C)"},
    "profiles_kind_postal_code": {"fr": "code postal", "en": "postal code"},
    "profiles_kind_city_with_postal_code": {"fr": "« Nom (code postal) »", "en": "'Name (postal code)'"},
}


def message(code: str, lang: str = "fr", **params: object) -> str:
    templates = MESSAGES[code]
    return templates.get(lang, templates["fr"]).format(**params)
