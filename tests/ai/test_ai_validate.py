"""The validators of each content kind and the prompt templates (versioned files, French by default)."""

import json

import pytest

from nightshift.ai.prompts import business_inputs, cache_key, template_for, templates
from nightshift.ai.validate import validate

GOOD = "La Boulangerie Dupont accueille ses clients à Paris pour du pain frais chaque matin."


def test_a_good_description_passes():
    assert validate("description", f"  {GOOD}  ", []).text == GOOD
    assert validate("description", GOOD, []).ok


@pytest.mark.parametrize(("text", "reason"), [
    ("Trop court.", "length"),
    ("x" * 10 + "a" * 495 + ".", "length"),
    ("la Boulangerie Dupont accueille ses clients à Paris pour du pain frais chaque matin.", "capital"),
    ("La Boulangerie Dupont accueille ses clients à Paris pour du pain frais chaque matin", "final punctuation"),
    ("Une boulangerie. Du pain frais. Des viennoiseries. Et des pâtisseries maison chaque matin.", "two sentences"),
    ("Bienvenue chez [Nom], la boulangerie de votre quartier, ouverte chaque matin de la semaine.", "placeholder"),
    ("Bienvenue chez {name}, la boulangerie de votre quartier, ouverte chaque matin de la semaine.", "placeholder"),
    ("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.", "placeholder"),
    ("En tant qu'IA, je peux dire que cette boulangerie propose du pain frais à Paris.", "forbidden"),
    ("   ", "empty"),
])
def test_descriptions_breaking_a_rule_are_rejected_with_the_reason(text, reason):
    verdict = validate("description", text, ["en tant qu'ia"])
    assert not verdict.ok and any(reason in r for r in verdict.reasons), verdict.reasons


def test_a_meta_description_is_at_most_160_characters():
    assert validate("meta_description", "a" * 160, []).ok
    assert not validate("meta_description", "a" * 161, []).ok


def test_a_faq_is_a_json_list_of_question_answer_pairs_stored_compact():
    document = {"faq": [{"question": "Où est-ce ?", "answer": "À Paris."}]}
    verdict = validate("faq", json.dumps(document), [])
    assert verdict.ok and json.loads(verdict.text) == document["faq"]


@pytest.mark.parametrize("text", [
    "pas du json",
    json.dumps([{"question": "Où ?", "answer": "Ici."}]),
    json.dumps({"faq": []}),
    json.dumps({"faq": [{"question": "Où est-ce", "answer": "À Paris."}]}),
    json.dumps({"faq": [{"question": "Où est-ce ?", "answer": ""}]}),
    json.dumps({"faq": [{"question": "Où est-ce ?", "answer": "À Paris.", "extra": 1}]}),
    json.dumps({"faq": [{"question": "Où est [Nom] ?", "answer": "À Paris."}]}),
])
def test_an_invalid_faq_is_rejected(text):
    assert not validate("faq", text, []).ok


def test_templates_are_versioned_french_files_per_kind_and_french_is_the_default():
    assert {(kind, lang) for kind, lang in templates()} >= {("description", "fr"), ("meta_description", "fr"),
                                                            ("faq", "fr")}
    assert template_for("description", "en") == template_for("description", "fr")
    assert template_for("description", "fr").version == "v1"


def test_the_cache_key_changes_with_model_template_inputs_and_params_only():
    template = template_for("description", "fr")
    inputs = business_inputs({"name": "Dupont", "city": "Paris", "email": "a@b.fr", "phone": "+33100"}, 500)
    base = cache_key("m", template, inputs, {"max_tokens": 300})
    assert base == cache_key("m", template, dict(inputs), {"max_tokens": 300})
    assert len({base, cache_key("m2", template, inputs, {"max_tokens": 300}),
                cache_key("m", template_for("faq", "fr"), inputs, {"max_tokens": 300}),
                cache_key("m", template, {**inputs, "city": "Lyon"}, {"max_tokens": 300}),
                cache_key("m", template, inputs, {"max_tokens": 301})}) == 5
    assert "a@b.fr" not in json.dumps(inputs) and "+33100" not in json.dumps(inputs)
