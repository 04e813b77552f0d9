import pandas as pd
import pytest

from nightshift.imports import values as v


def text(*items):
    return v.clean_text(pd.Series(list(items), dtype=object))


@pytest.mark.parametrize("dtype", [object, "string"])
def test_clean_text_trims_and_maps_empty_artefacts_to_na(dtype):
    cleaned = v.clean_text(pd.Series([" a\u00a0", "", "None", "NULL", None, "'=1+1", "x"], dtype=dtype))
    assert cleaned.tolist()[:1] == ["a"] and cleaned.isna().tolist() == [False, True, True, True, True, False, False]
    assert cleaned.iloc[5] == "=1+1"  # our report's neutralising apostrophe is removed on re-import


def test_headers_match_case_accent_space_and_punctuation_insensitively():
    assert v.normalize_header("Sous-catégorie") == v.normalize_header("sous_categorie") == "souscategorie"
    assert v.normalize_header("\ufeffCode\n postal  ") == "codepostal"


@pytest.mark.parametrize(("raw", "region", "expected"), [
    ("70 12 34 56", "ML", "+22370123456"),
    ("+223 70-12-34-56", "ML", "+22370123456"),
    ("0022370123456", "ML", "+22370123456"),
    ("0022370123456", "FR", "+22370123456"),
    ("22370123456.0", "ML", "+22370123456"),  # Excel stored the number as a float and dropped the +
    ("+33 6 12 34 56 78", "ML", "+33612345678"),
    ("0612345678", "FR", "+33612345678"),
    ("0612345678", "ML", None),  # a French number is never turned into a wrong Malian one
    ("13812345678", "ML", None),
    ("+86 138 1234 5678", "ML", "+8613812345678"),
])
def test_phones_become_e164_or_invalid(raw, region, expected):
    parsed = v.parse_phone(text(raw), default_region=region)
    assert (None if parsed.values.isna().iloc[0] else parsed.values.iloc[0]) == expected
    assert bool(parsed.invalid.iloc[0]) == (expected is None)


def test_decimals_integers_dates_and_booleans():
    assert v.parse_decimal(text("12,6392", "1 234,5", "1.234.567,89", "1,234.56", "-4,5")).values.tolist() == [
        12.6392, 1234.5, 1234567.89, 1234.56, -4.5]
    assert v.parse_decimal(text("abc")).invalid.tolist() == [True]
    integers = v.parse_integer(text("12", "1.0", "", "1.5"))
    assert integers.values.iloc[:2].tolist() == [12, 1] and integers.invalid.tolist() == [False, False, False, True]
    dates = v.parse_date(text("31/12/2024", "2024-03-01 10:00:00", "45123", "31/02/2024", "12/31/2024"))
    assert [d.date().isoformat() if pd.notna(d) else None for d in dates.values] == [
        "2024-12-31", "2024-03-01", "2023-07-16", None, None]
    assert dates.invalid.tolist() == [False, False, False, True, True]
    assert v.parse_bool(text("oui", "Non", "1.0", "yes", "peut-être")).values.tolist()[:4] == [True, False, True, True]


def test_company_identifiers_and_codes():
    assert v.parse_siren(text("732 829 320", "732829320.0", "123456789", "73282932")).values.notna().tolist() == [
        True, True, False, False]
    assert v.parse_siret(text("73282932000074", "35600000049837", "73282932000075")).invalid.tolist() == [
        False, False, True]  # La Poste SIRETs use the "sum divisible by 5" rule
    assert v.parse_naf(text("6201Z", "62.01z", "1.11", "620", "ABC")).values.tolist()[:3] == [
        "62.01Z", "62.01Z", "01.11"]
    assert v.parse_naf(text("620", "ABC")).invalid.tolist() == [True, True]
    assert v.parse_postal_code(text("1400", "1400.0", "75001", "2A004")).values.tolist()[:3] == [
        "01400", "01400", "75001"]


def test_slugs_emails_urls_and_formula_neutralising():
    assert v.slugify(pd.Series(["Éducation – Formation – E-learning", "Artisanat d’art", "Œuvres &amp; Co"])
                     ).tolist() == ["education-formation-e-learning", "artisanat-dart", "oeuvres-co"]
    assert v.parse_email(text("Awa@Exemple.ML", "pas-un-email")).values.tolist()[0] == "Awa@exemple.ml"
    assert v.parse_url(text("www.exemple.fr", "pas une url")).values.tolist()[0] == "https://www.exemple.fr"
    assert v.neutralize_formula(pd.Series(["=HYPERLINK(1)", "+336", "@SUM(A1)", "-2+3", "ok", None, 5],
                                          dtype=object)).tolist() == [
        "'=HYPERLINK(1)", "'+336", "'@SUM(A1)", "'-2+3", "ok", None, 5]
