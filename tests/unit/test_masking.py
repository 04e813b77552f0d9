from datetime import date

from nightshift.masking import mask_phone, mask_text, mask_value


def test_a_phone_keeps_its_country_code_and_last_digits():
    assert mask_phone("+22370123456") == "+2237••••456"
    assert mask_phone("+223 70 12 34 56") == "+2237••••456"
    assert mask_phone("1234") == "••••"


def test_phones_inside_a_text_are_masked_and_the_rest_kept():
    assert mask_text("envoi à +22370123456 refusé") == "envoi à +2237••••456 refusé"


def test_a_value_shows_only_what_it_starts_with():
    assert mask_value("Traoré") == "T•••"
    assert mask_value("awa@exemple.ml") == "a•••"
    assert mask_value("+33612345678") == "+3361••••678"
    assert mask_value("Lyon 3e") == "L•••"
    assert mask_value(date(2024, 1, 5)) == "••••••••"  # written like a phone number: masked as one
    assert (mask_value("x"), mask_value(None)) == ("•", "∅")
