"""The message catalogue: every code in both languages, with the same parameters, and each text in its
own language."""

import ast
import pickle
from pathlib import Path

import pytest

from nightshift.imports import messages
from nightshift.imports.messages import MESSAGES, Rejection, message, template_params
from nightshift.imports.reading import FileRejected
from nightshift.imports.service import ImportRejected
from tests.imports.languages import foreign_words

LANGUAGES = ("fr", "en")


def _rendered(code: str, lang: str) -> str:
    # A number fits every parameter, format specs included ({size:,}, {ratio:.0%}).
    return message(code, lang, **{name: 1234 for name in template_params(MESSAGES[code][lang])})


def test_every_code_is_written_in_both_languages_with_the_same_parameters():
    for code, templates in MESSAGES.items():
        assert set(templates) == set(LANGUAGES), code
        assert template_params(templates["fr"]) == template_params(templates["en"]), code


def test_no_code_is_defined_twice():
    """A second entry of a code in the dict literal would silently replace the first."""
    tree = ast.parse(Path(messages.__file__).read_text(encoding="utf-8"))
    [catalogue] = [node.value for node in tree.body if isinstance(node, ast.AnnAssign)
                   and getattr(node.target, "id", None) == "MESSAGES"]
    codes = [key.value for key in catalogue.keys]
    assert len(codes) == len(set(codes)) == len(MESSAGES)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_template_formats_with_its_parameters_in_its_own_language(lang):
    foreign = {code: foreign_words(_rendered(code, lang), lang) for code in MESSAGES}
    assert {code: words for code, words in foreign.items() if words} == {}


def test_the_language_check_sees_the_mixed_texts_of_the_past():
    assert foreign_words("clients.csv: required column(s) missing: telephone", "fr") == ["column", "missing",
                                                                                         "required"]
    assert foreign_words("Numéro de téléphone invalide dans « telephone »", "en") == ["dans", "invalide"]


def test_thousands_are_grouped_the_way_each_language_writes_them():
    assert "1\u202f048\u202f576 octets" in message("file_too_large", "fr", file="a.csv", size=1048576, limit=20)
    assert "1,048,576 bytes" in message("file_too_large", "en", file="a.csv", size=1048576, limit=20)


@pytest.mark.parametrize("kind", [FileRejected, ImportRejected])
def test_a_rejection_is_its_text_in_the_run_language_and_travels_pickled(kind):
    rejected = kind("no_rows", "en", file="villes.csv", line=1)
    assert isinstance(rejected, Rejection)
    assert str(rejected) == rejected.message == "villes.csv: the header (line 1) has no data rows"
    back = pickle.loads(pickle.dumps(kind("no_rows", "fr", file="villes.csv", line=1)))
    assert (type(back), back.code, back.lang, back.params) == (kind, "no_rows", "fr", {"file": "villes.csv", "line": 1})
    assert str(back) == "villes.csv : l'en-tête (ligne 1) n'est suivi d'aucune ligne de données."
