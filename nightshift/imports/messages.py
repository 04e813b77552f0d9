"""Every text of the importer a person reads, by stable code, in French (default) and English.

Codes are stable (tests, JSON output and the error report rely on them); messages may be reworded.
A run speaks the one language of the setting NIGHTSHIFT_LANG (Settings.lang): row errors, file-level
refusals (`Rejection`), summaries and log lines all come from here. Each code has a template per
language, both with the same parameters. Numbers formatted `{n:,}` get the language's thousands
separator.
"""

from __future__ import annotations

import string

MESSAGES: dict[str, dict[str, str]] = {
    # Row errors
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
    "not_a_phone": {
        "fr": "« {column} » ne contient pas un numéro de téléphone : attendu des chiffres, séparés ou non par "
              "des espaces, points ou tirets (ex. 70 12 34 56, ou +223 70 12 34 56 pour l'indicatif).",
        "en": "'{column}' does not hold a phone number: expected digits, with or without spaces, dots or "
              "dashes (e.g. 70 12 34 56, or +223 70 12 34 56 with the country code).",
    },
    "invalid_international_phone": {
        "fr": "Numéro de téléphone invalide dans « {column} » : ce numéro n'existe pas pour son indicatif "
              "international ; vérifiez l'indicatif et les chiffres qui suivent.",
        "en": "Invalid phone number in '{column}': no such number exists for its international prefix; "
              "check the country code and the digits after it.",
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
    # Files refused as a whole (reading.FileRejected, service.ImportRejected)
    "not_a_spreadsheet": {
        "fr": "{file} : ce n'est pas un classeur lisible (endommagé, ou pas vraiment un fichier {suffix}) : "
              "exportez-le de nouveau depuis le tableur.",
        "en": "{file}: not a readable spreadsheet (damaged or not really {suffix}): export it again from the "
              "spreadsheet program",
    },
    "file_too_large": {
        "fr": "{file} : {size:,} octets, au-delà de la limite de {limit:,} octets (réglage imports.max_bytes) : "
              "découpez le fichier ou relevez la limite.",
        "en": "{file}: {size:,} bytes is over the limit of {limit:,} bytes (setting imports.max_bytes); split the "
              "file or raise the limit",
    },
    "empty_file": {
        "fr": "{file} : le fichier est vide ; déposez-le de nouveau avec son en-tête et ses lignes.",
        "en": "{file}: the file is empty; upload it again with its header and rows",
    },
    "no_text": {
        "fr": "{file} : le fichier ne contient aucun texte ; déposez-le de nouveau avec son en-tête et ses lignes.",
        "en": "{file}: the file holds no text; upload it again with its header and rows",
    },
    "utf16_damaged": {
        "fr": "{file} : le texte UTF-16 est endommagé ou tronqué (octet {offset:,}) : enregistrez de nouveau le "
              "fichier en CSV UTF-8.",
        "en": "{file}: the UTF-16 text is damaged or truncated (byte {offset:,}); save the file again as CSV UTF-8",
    },
    "not_tabular": {
        "fr": "{file} : ce n'est pas un tableau en texte (contenu binaire) : déposez un fichier CSV ou Excel.",
        "en": "{file}: this is not a text table (binary content); upload a CSV or an Excel file",
    },
    "unknown_encoding": {
        "fr": "{file} : ligne {line} : l'encodage du texte n'est ni UTF-8 ni Windows-1252 : enregistrez le "
              "fichier en CSV UTF-8.",
        "en": "{file}: line {line}: the text encoding is neither UTF-8 nor Windows-1252; save the file as CSV UTF-8",
    },
    "unclosed_quote": {
        "fr": "{file} : ligne {line} : un champ entre guillemets (\") s'ouvre dans l'enregistrement qui commence "
              "ici et ne se ferme jamais, le reste du fichier ne serait donc qu'une cellule : fermez ou retirez ce "
              "guillemet, puis déposez de nouveau le fichier.",
        "en": "{file}: line {line}: a quoted field (\") opens in the record starting here and never closes, so the "
              "rest of the file would be one cell; close the quote or remove it, then upload the file again",
    },
    "csv_structure": {
        "fr": "{file} : structure CSV illisible vers la ligne {line} : vérifiez les guillemets et les séparateurs "
              "de cette ligne.",
        "en": "{file}: CSV structure error near line {line}: check the quotes and delimiters of that line",
    },
    "no_header": {
        "fr": "{file} : aucune ligne d'en-tête trouvée : la première ligne doit nommer les colonnes.",
        "en": "{file}: no header line found; the first line must name the columns",
    },
    "no_sheet_header": {
        "fr": "{file} : aucune feuille n'a de ligne d'en-tête reconnue dans ses {rows} premières lignes "
              "(feuilles : {sheets}) : nommez les colonnes comme le profil d'import les attend.",
        "en": "{file}: no sheet has a recognised header row in its first {rows} rows (sheets: {sheets}); name "
              "the columns as the import profile expects them",
    },
    "too_many_rows": {
        "fr": "{file} : plus de {limit:,} lignes de données (réglage imports.max_rows) : découpez le fichier.",
        "en": "{file}: more than {limit:,} data rows (setting imports.max_rows); split the file",
    },
    "spreadsheet_damaged": {
        "fr": "{file} : le classeur est endommagé ou tronqué : exportez-le de nouveau.",
        "en": "{file}: the spreadsheet is damaged or truncated; export it again",
    },
    "spreadsheet_unreadable": {
        "fr": "{file} : le classeur ne peut pas être lu : exportez-le de nouveau ou enregistrez-le en CSV.",
        "en": "{file}: the spreadsheet cannot be read; export it again or save it as CSV",
    },
    "too_many_cells": {
        "fr": "{file} : environ {cells:,} cellules, au-delà de la limite de {limit:,} (réglage imports.max_cells) : "
              "enregistrez-le en CSV.",
        "en": "{file}: about {cells:,} cells, over the limit of {limit:,} (setting imports.max_cells); save it as CSV",
    },
    "sheet_too_many_cells": {
        "fr": "{file} : la feuille « {sheet} » compte {cells:,} cellules, au-delà de la limite de {limit:,} "
              "(réglage imports.max_cells) : enregistrez-la en CSV.",
        "en": "{file}: sheet '{sheet}' has {cells:,} cells, over the limit of {limit:,} (setting "
              "imports.max_cells); save it as CSV",
    },
    "no_such_profile": {
        "fr": "profil d'import inconnu « {profile} » (profils connus : {known}).",
        "en": "unknown profile '{profile}' (known: {known})",
    },
    "unknown_profile": {
        "fr": "{file} : aucun profil d'import ne correspond à l'en-tête ({header}, ligne {line}){looks_like} ; "
              "choisissez-en un avec --profile ou le sous-dossier de dépôt ({profiles}).",
        "en": "{file}: no import profile matches the header ({header}, line {line}){looks_like}; choose one with "
              "--profile or the upload sub-folder ({profiles})",
    },
    "looks_like_profile": {
        "fr": " ; il ressemble à un fichier {profile} sans sa ou ses colonnes obligatoires {missing}",
        "en": "; it looks like a {profile} file without its required column(s) {missing}",
    },
    "missing_columns": {
        "fr": "{file} : colonne(s) obligatoire(s) absente(s) : {missing} ; en-têtes trouvés ligne {line} : "
              "{headers}. Nommez la colonne d'une des orthographes acceptées (majuscules, accents et espaces "
              "sont sans importance).",
        "en": "{file}: required column(s) missing: {missing}; headers found on line {line}: {headers}. Name the "
              "column with one of the accepted spellings (case, accents and spaces do not matter)",
    },
    "map_malformed": {
        "fr": "--map « {value} » : attendu « en-tête=colonne », l'en-tête tel que le fichier l'écrit et la colonne du "
              "profil (ex. --map \"Raison sociale=nom\").",
        "en": "--map '{value}': expected 'header=column', the header as the file writes it and the profile's column "
              "(e.g. --map \"Raison sociale=nom\")",
    },
    "map_unknown_field": {
        "fr": "--map « {header}={field} » : {field} n'est pas une colonne du profil {profile} (colonnes connues : "
              "{known}).",
        "en": "--map '{header}={field}': {field} is not a column of profile {profile} (known: {known})",
    },
    "map_unknown_field_any": {
        "fr": "--map « {header}={field} » : {field} n'est une colonne d'aucun profil (colonnes connues : {known}).",
        "en": "--map '{header}={field}': {field} is not a column of any profile (known: {known})",
    },
    "map_header_absent": {
        "fr": "{file} : --map nomme des en-têtes absents du fichier : {absent} ; en-têtes trouvés : {headers}.",
        "en": "{file}: --map names headers the file does not have: {absent}; headers found: {headers}",
    },
    "map_profile_fields": {"fr": "{profile} : {fields}", "en": "{profile}: {fields}"},
    "column_spellings": {
        "fr": "{column} (orthographes acceptées : {spellings})",
        "en": "{column} (accepted spellings: {spellings})",
    },
    "either_column": {
        "fr": "{first} ou {second}",
        "en": "{first} or {second}",
    },
    "no_rows": {
        "fr": "{file} : l'en-tête (ligne {line}) n'est suivi d'aucune ligne de données.",
        "en": "{file}: the header (line {line}) has no data rows",
    },
    "strict_abort": {
        "fr": "--strict : {invalid} ligne(s) invalide(s), rien n'a été écrit ; corrigez le rapport d'erreurs et "
              "déposez-le de nouveau.",
        "en": "--strict: {invalid} invalid row(s), nothing written; fix the error report and upload it again",
    },
    "too_many_invalid": {
        "fr": "{invalid} lignes invalides sur {rows} ({ratio:.0%}, plus de {limit:.0%} : "
              "imports.abort_invalid_ratio) : rien n'a été écrit ; corrigez le rapport d'erreurs et déposez-le de "
              "nouveau.",
        "en": "{invalid} of {rows} rows invalid ({ratio:.0%}, more than {limit:.0%}: imports.abort_invalid_ratio): "
              "nothing written; fix the error report and upload it again",
    },
    # Summary of an import (service), parts joined by summary_separator
    "summary": {
        "fr": "{rows} ligne(s) : {inserted} ajoutée(s), {updated} mise(s) à jour, {unchanged} inchangée(s), "
              "{invalid} invalide(s)",
        "en": "{rows} rows: {inserted} inserted, {updated} updated, {unchanged} unchanged, {invalid} invalid",
    },
    "summary_separator": {"fr": " ; ", "en": "; "},
    "unknown_columns_ignored": {
        "fr": "colonnes inconnues ignorées : {columns}",
        "en": "unknown columns ignored: {columns}",
    },
    "nul_bytes_removed": {
        "fr": "{count} octet(s) NUL retiré(s) du texte",
        "en": "{count} NUL byte(s) removed from the text",
    },
    "read_as_cp1252": {
        "fr": "des octets qui ne sont pas de l'UTF-8 ont été lus en Windows-1252 : vérifiez les accents",
        "en": "bytes that are not UTF-8 were read as Windows-1252: check the accents",
    },
    "validated_by_processes": {
        "fr": "validation répartie sur {processes} processus",
        "en": "validated by {processes} processes",
    },
    "file_not_moved": {
        "fr": "{message} (le fichier n'a pas pu être déplacé : {reason} ; il est toujours à {path})",
        "en": "{message} (the file could not be moved: {reason}; it is still at {path})",
    },
    # Log lines of an import (service, reading)
    "log_mixed_encoding": {
        "fr": "{file} : texte UTF-8 avec des octets qui ne sont pas de l'UTF-8 (dès la ligne {line}) : ils sont "
              "lus en Windows-1252",
        "en": "{file}: UTF-8 text with bytes that are not UTF-8 (first on line {line}): those are read as "
              "Windows-1252",
    },
    "log_unknown_columns": {
        "fr": "{file} : colonnes inconnues ignorées : {columns}",
        "en": "{file}: unknown columns ignored: {columns}",
    },
    "log_workers": {
        "fr": "{file} : validation dans ce processus et {workers} processus auxiliaires",
        "en": "{file}: validating in this process and {workers} worker processes",
    },
    "log_progress": {
        "fr": "{file} : {rows} ligne(s) lues et validées",
        "en": "{file}: {rows} rows read and validated",
    },
    "log_failure_not_recorded": {
        "fr": "l'échec de l'import {import_id} n'a pas pu être enregistré",
        "en": "could not record the failure of import {import_id}",
    },
    "log_staging_not_dropped": {
        "fr": "les tables de préparation de l'import {import_id} n'ont pas pu être supprimées",
        "en": "could not drop the staging tables of import {import_id}",
    },
    "log_file_not_moved": {
        "fr": "import {import_id} : {file} n'a pas pu être sorti du dossier de dépôt : {reason}",
        "en": "import {import_id}: {file} could not be moved out of the upload folder: {reason}",
    },
    # Intake of uploads (intake)
    "duplicate_of": {
        "fr": "même contenu que l'import {import_id} ({file}, {status})",
        "en": "same content as import {import_id} ({file}, {status})",
    },
    "duplicate_of_bad_input": {
        "fr": "même contenu que l'import {import_id} ({file}, {status}) : les mêmes octets échoueraient de la même "
              "façon ; déposez un fichier corrigé, ou ré-exécutez la partition « {partition} » une fois la cause "
              "corrigée",
        "en": "same content as import {import_id} ({file}, {status}): the same bytes would fail the same way; upload "
              "a corrected file, or re-execute partition '{partition}' once the cause is fixed",
    },
    "duplicate_of_failed": {
        "fr": "même contenu que l'import {import_id} ({file}, {status}) : ré-exécutez la partition « {partition} » "
              "pour le réessayer",
        "en": "same content as import {import_id} ({file}, {status}): re-execute partition '{partition}' to retry it",
    },
    "unknown_account_folder": {
        "fr": "dossier de compte inconnu « {folder} » : créez le compte ou déplacez le fichier dans "
              "uploads/<profil>/",
        "en": "unknown account folder '{folder}': create the account or move the file to uploads/<profile>/",
    },
    # UI
    # (the Dagster UI: run failures of import_batch and the import log's `interrupted`; actions named as the UI
    # and the upload folder offer them, never the CLI's options)
    "ui_import_failed": {
        "fr": "l'import {import_id} de « {file} » a échoué : {reason}",
        "en": "import {import_id} of '{file}' failed: {reason}",
    },
    "ui_no_profile_matches": {
        "fr": "{file} : aucun profil d'import ne correspond à son en-tête ; déposez le fichier dans le sous-dossier "
              "de son profil, {uploads}/<profil>/ ou {uploads}/<compte>/<profil>/, ou renommez ses colonnes comme "
              "le profil les attend.",
        "en": "{file}: no import profile matches its header; drop the file in the sub-folder of its profile, "
              "{uploads}/<profile>/ or {uploads}/<account>/<profile>/, or name its columns as the profile expects.",
    },
    "ui_strict_abort": {
        "fr": "strict: true dans la configuration du run : {invalid} ligne(s) invalide(s), rien n'a été écrit ; "
              "corrigez le rapport d'erreurs et déposez-le de nouveau, ou relancez sans strict.",
        "en": "strict: true in the run's config: {invalid} invalid row(s), nothing written; fix the error report "
              "and drop it again, or launch the run again without strict.",
    },
    "ui_no_import_registered": {
        "fr": "aucun import n'est enregistré pour la partition « {partition} » : déposez le fichier dans le dossier "
              "de dépôt.",
        "en": "no import is registered for partition '{partition}': drop the file in the upload folder.",
    },
    "ui_file_gone": {
        "fr": "import {import_id} : le fichier n'est plus à {path} (déplacé ou supprimé) ; déposez-le de nouveau "
              "dans {uploads}.",
        "en": "import {import_id}: the file is no longer at {path} (moved or deleted); drop it again in {uploads}.",
    },
    "ui_internal_error": {
        "fr": "l'import {import_id} a échoué sur une erreur interne : {error}",
        "en": "import {import_id} failed on an internal error: {error}",
    },
    "ui_interrupted": {
        "fr": "interrompu : le run {run_id} s'est arrêté avant la fin de l'import ; rien n'a été écrit et le fichier "
              "est resté où il était : l'import est relancé une fois automatiquement, sinon ré-exécutez sa "
              "partition.",
        "en": "interrupted: the run {run_id} stopped before the import finished; nothing was written and the file "
              "stayed where it was: the import is run again once automatically, else re-execute its partition.",
    },
    # CLI output
    # (`nightshift import`, `imports list/show/failed-partitions`; *_one / *_other: singular and plural)
    "cli_heading": {"fr": "{label} — {file} : {status}", "en": "{label} — {file}: {status}"},
    "cli_import": {"fr": "Import {import_id}", "en": "Import {import_id}"},
    "cli_dry_run": {"fr": "Simulation, rien n'est écrit", "en": "Dry run, nothing written"},
    "cli_status_received": {"fr": "reçu", "en": "received"},
    "cli_status_running": {"fr": "en cours", "en": "running"},
    "cli_status_succeeded": {"fr": "réussi", "en": "succeeded"},
    "cli_status_partial": {"fr": "partiel", "en": "partial"},
    "cli_status_failed": {"fr": "échoué", "en": "failed"},
    "cli_status_interrupted": {"fr": "interrompu", "en": "interrupted"},
    "cli_status_duplicate": {"fr": "doublon", "en": "duplicate"},
    "cli_profile": {"fr": "profil {profile}", "en": "profile {profile}"},
    "cli_sheet": {"fr": "feuille « {sheet} »", "en": "sheet '{sheet}'"},
    "cli_encoding": {"fr": "encodage {encoding}", "en": "encoding {encoding}"},
    "cli_delimiter": {"fr": "séparateur « {delimiter} »", "en": "delimiter '{delimiter}'"},
    "cli_rows_one": {"fr": "{count} ligne", "en": "{count} row"},
    "cli_rows_other": {"fr": "{count} lignes", "en": "{count} rows"},
    "cli_inserted_one": {"fr": "{count} insérée", "en": "{count} inserted"},
    "cli_inserted_other": {"fr": "{count} insérées", "en": "{count} inserted"},
    "cli_updated_one": {"fr": "{count} mise à jour", "en": "{count} updated"},
    "cli_updated_other": {"fr": "{count} mises à jour", "en": "{count} updated"},
    "cli_unchanged_one": {"fr": "{count} inchangée", "en": "{count} unchanged"},
    "cli_unchanged_other": {"fr": "{count} inchangées", "en": "{count} unchanged"},
    "cli_invalid_one": {"fr": "{count} invalide", "en": "{count} invalid"},
    "cli_invalid_other": {"fr": "{count} invalides", "en": "{count} invalid"},
    "cli_counts": {"fr": "{rows} : {inserted}, {updated}, {unchanged}, {invalid}",
                   "en": "{rows}: {inserted}, {updated}, {unchanged}, {invalid}"},
    "cli_rate": {"fr": "{rate} lignes/s", "en": "{rate} rows/s"},
    "cli_progress": {"fr": "{file} : {rows} — lecture et validation ({rate})",
                     "en": "{file}: {rows} read and validated ({rate})"},
    "cli_error_line": {"fr": "ligne {line} [{column}] {error_code} : {message}",
                       "en": "line {line} [{column}] {error_code}: {message}"},
    "cli_more_errors": {"fr": "… {shown} premières erreurs sur {total}", "en": "… first {shown} errors of {total}"},
    "cli_error_report": {"fr": "rapport d'erreurs : {path}", "en": "error report: {path}"},
    "cli_duplicate_of": {"fr": "même contenu que l'import {import_id}", "en": "same content as import {import_id}"},
    "cli_no_imports": {"fr": "aucun import", "en": "no imports"},
    "cli_verbose_hint": {"fr": "le détail (trace comprise) : --verbose, ou le run {run_id} dans l'interface Dagster",
                         "en": "the details (stack trace included): --verbose, or the run {run_id} in the Dagster UI"},
    "cli_column_id": {"fr": "ID", "en": "ID"},
    "cli_column_status": {"fr": "STATUT", "en": "STATUS"},
    "cli_column_profile": {"fr": "PROFIL", "en": "PROFILE"},
    "cli_column_rows": {"fr": "LIGNES", "en": "ROWS"},
    "cli_column_inserted": {"fr": "INSÉRÉES", "en": "INSERTED"},
    "cli_column_updated": {"fr": "MISES À JOUR", "en": "UPDATED"},
    "cli_column_unchanged": {"fr": "INCHANGÉES", "en": "UNCHANGED"},
    "cli_column_invalid": {"fr": "INVALIDES", "en": "INVALID"},
    "cli_column_file": {"fr": "FICHIER", "en": "FILE"},
    "cli_column_partition": {"fr": "PARTITION", "en": "PARTITION"},
    "cli_column_kind": {"fr": "TYPE", "en": "KIND"},
    "cli_column_backfill": {"fr": "BACKFILL", "en": "BACKFILL"},
    "cli_column_reason": {"fr": "RAISON", "en": "REASON"},
    "cli_kind_transient": {"fr": "passager", "en": "transient"},
    "cli_kind_data": {"fr": "données", "en": "data"},
    "cli_yes": {"fr": "oui", "en": "yes"},
    "cli_no": {"fr": "non", "en": "no"},
    "cli_data_failures_left_one": {
        "fr": "{count} partition a échoué sur ses données et n'est pas listée : corrigez le fichier là où il est "
              "gardé (`nightshift imports failed-partitions --kind data` dit pourquoi).",
        "en": "{count} partition failed on its data and is not listed: fix the file where it is kept "
              "(`nightshift imports failed-partitions --kind data` says why).",
    },
    "cli_data_failures_left_other": {
        "fr": "{count} partitions ont échoué sur leurs données et ne sont pas listées : corrigez les fichiers là où "
              "ils sont gardés (`nightshift imports failed-partitions --kind data` dit pourquoi).",
        "en": "{count} partitions failed on their data and are not listed: fix the files where they are kept "
              "(`nightshift imports failed-partitions --kind data` says why).",
    },
    "cli_no_failed_partitions": {"fr": "aucune partition en échec", "en": "no failed partitions"},
    # Preview of changes (`nightshift import FILE --dry-run --diff`)
    "cli_diff_needs_dry_run": {"fr": "--diff montre ce qu'un import changerait : ajoutez --dry-run",
                               "en": "--diff shows what an import would change: add --dry-run"},
    "cli_preview_heading": {"fr": "les {count} premières lignes :", "en": "the first {count} rows:"},
    "cli_preview_new": {"fr": "ligne {line} : nouvelle", "en": "line {line}: new"},
    "cli_preview_unchanged": {"fr": "ligne {line} : inchangée", "en": "line {line}: unchanged"},
    "cli_preview_changed": {"fr": "ligne {line} : modifiée — {changes}", "en": "line {line}: changed — {changes}"},
    "cli_preview_invalid": {"fr": "ligne {line} : invalide — {errors}", "en": "line {line}: invalid — {errors}"},
    "cli_preview_change": {"fr": "{column} : {old} → {new}", "en": "{column}: {old} → {new}"},
    "cli_preview_empty": {"fr": "(vide)", "en": "(empty)"},
    # Undo (`nightshift imports undo ID`)
    "undo_unknown_import": {"fr": "aucun import n° {import_id}", "en": "no import with id {import_id}"},
    "undo_already_undone": {"fr": "l'import {import_id} est déjà annulé", "en": "import {import_id} is already undone"},
    "undo_nothing_written": {
        "fr": "l'import {import_id} n'a rien écrit (statut {status}) : rien à annuler",
        "en": "import {import_id} wrote nothing (status {status}): nothing to undo",
    },
    "undo_done": {"fr": "Import {import_id} annulé : {deleted}", "en": "Import {import_id} undone: {deleted}"},
    "undo_dry_run": {"fr": "Annulation de l'import {import_id} (simulation, rien n'est supprimé) : {deleted}",
                     "en": "Undo of import {import_id} (dry run, nothing deleted): {deleted}"},
    "undo_deleted_one": {"fr": "{count} ligne supprimée", "en": "{count} row deleted"},
    "undo_deleted_other": {"fr": "{count} lignes supprimées", "en": "{count} rows deleted"},
    "undo_kept_changed_later": {"fr": "{table} : {count} gardée(s), modifiée(s) depuis par un autre import : {keys}",
                                "en": "{table}: {count} kept, changed since by another import: {keys}"},
    "undo_kept_referenced": {"fr": "{table} : {count} gardée(s), d'autres lignes y renvoient : {keys}",
                             "en": "{table}: {count} kept, other rows point to them: {keys}"},
    "undo_kept_updated_only": {
        "fr": "{table} : {count} gardée(s) avec les valeurs de l'import, qui les a seulement mises à jour (les "
              "anciennes valeurs ne sont pas conservées) : {keys}",
        "en": "{table}: {count} kept with the import's values, which only updated them (earlier values are not "
              "kept): {keys}",
    },
}


class _LanguageFormatter(string.Formatter):
    def __init__(self, thousands: str) -> None:
        self.thousands = thousands

    def format_field(self, value: object, format_spec: str) -> str:
        text = super().format_field(value, format_spec)
        return text.replace(",", self.thousands) if "," in format_spec else text


# French groups thousands with a narrow no-break space; a comma is its decimal mark.
_FORMATTERS = {"fr": _LanguageFormatter("\u202f")}


def message(code: str, lang: str = "fr", **params: object) -> str:
    templates = MESSAGES[code]
    template = templates.get(lang, templates["fr"])
    formatter = _FORMATTERS.get(lang)
    if formatter is not None and ":," in template:
        return formatter.format(template, **params)
    return template.format(**params)


def template_params(template: str) -> set[str]:
    """The parameters a template uses."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


class Rejection(Exception):
    """Bad input stated in the run's language: `code` (an entry of MESSAGES) and `params` say what is
    wrong, `message` (also str()) is the text a person reads."""

    def __init__(self, code: str, lang: str, **params: object) -> None:
        self.code, self.lang, self.params = code, lang, params
        self.message = message(code, lang, **params)
        super().__init__(self.message)

    def __reduce__(self) -> tuple:  # raised in a worker process, it travels back pickled
        return _rejection, (type(self), self.code, self.lang, self.params)


def _rejection(kind: type[Rejection], code: str, lang: str, params: dict[str, object]) -> Rejection:
    return kind(code, lang, **params)
