"""Telling a text's language: words of the other language that must not appear in it.

What both languages write alike is left out before the check: code spans (`nightshift imports …`),
options (--profile), settings (imports.max_bytes), paths (uploads/<profile>/) and quoted values.
"""

import re

# Words a French text never uses, and a few an English one never does.
ENGLISH_WORDS = (
    "the", "and", "of", "is", "are", "with", "without", "file", "line", "lines", "row", "rows", "column",
    "columns", "missing", "found", "number", "must", "not", "upload", "check", "add", "save", "again",
    "required", "accepted", "spellings", "header", "sheet", "bytes", "could", "does", "has", "than",
    "more", "or", "to", "for", "from", "into", "profile", "invalid", "empty", "nothing", "written",
    "unknown", "ignored", "removed", "read", "damaged", "split", "limit", "setting", "same", "content",
)
FRENCH_WORDS = (
    "le", "la", "les", "des", "du", "une", "est", "sont", "ligne", "lignes", "fichier", "colonne",
    "colonnes", "aucun", "aucune", "avec", "pour", "dans", "sur", "ou", "et", "pas", "vérifiez", "corrigez",
    "déposez", "invalide", "obligatoire", "absente", "orthographes", "acceptées", "réglage", "octets", "vide",
)
# A quote after a letter is French elision (l'indicatif), not a quoted value.
_SHARED = re.compile(r"`[^`]*`|--[\w-]+|\b\w+(?:\.\w+)+\b|\S*/\S*|(?<!\w)'[^'\s]*'|« [^»]* »")


def foreign_words(text: str, lang: str) -> list[str]:
    """The words of the other language found in `text` (written in `lang`)."""
    words = set(re.findall(r"[\w']+", _SHARED.sub(" ", text).lower()))
    return sorted(words & set(ENGLISH_WORDS if lang == "fr" else FRENCH_WORDS))
