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
}


def message(code: str, lang: str = "fr", **params: object) -> str:
    templates = MESSAGES[code]
    return templates.get(lang, templates["fr"]).format(**params)
