from datetime import date

import numpy as np
import pandas as pd
import pytest

from nightshift import phones
from nightshift.imports import values as v

DTYPES = [object, "str", "string"]


@pytest.fixture(params=DTYPES, ids=["object", "str", "string"])
def series(request):
    """Builds the raw cell Series in each dtype a reader may hand over."""
    return lambda *items: pd.Series(list(items), dtype=request.param)


def as_list(values: pd.Series) -> list:
    return [None if pd.isna(x) else x for x in values]


def as_dates(values: pd.Series) -> list:
    return [None if pd.isna(x) else x.date() for x in values]


# ---------------------------------------------------------------- clean_text, headers, slugs


def test_clean_text_trims_spaces_including_nbsp_and_narrow_nbsp(series):
    cleaned = v.clean_text(series(" a ", "\u00a0b\u202f", "\tc d\r\n", "x"))
    assert cleaned.tolist() == ["a", "b", "c d", "x"]


def test_clean_text_maps_empty_cells_and_exporter_null_texts_to_na(series):
    cleaned = v.clean_text(series("", "   ", "\u00a0", None, "None", "nan", "NaN", "NULL", "null",
                                  "Nan", "Nullité"))
    assert cleaned.isna().tolist() == [True] * 9 + [False, False]
    assert cleaned.iloc[9:].tolist() == ["Nan", "Nullité"]  # only the exact exporter spellings
    assert cleaned.dtype == object and cleaned.iloc[0] is pd.NA


def test_clean_text_removes_the_apostrophe_our_reports_put_before_formula_characters(series):
    cleaned = v.clean_text(series("'=1+1", "'-4,5", "'+33612345678", "'@x", "'abc", "l'eau"))
    assert cleaned.tolist() == ["=1+1", "-4,5", "+33612345678", "@x", "'abc", "l'eau"]


def test_clean_text_keeps_a_duplicated_custom_index():
    raw = pd.Series([" a", None, "b "], index=["x", "x", "y"], dtype=object)
    cleaned = v.clean_text(raw)
    assert cleaned.index.tolist() == ["x", "x", "y"] and as_list(cleaned) == ["a", None, "b"]


@pytest.mark.parametrize("header", ["Sous-catégorie", "sous_categorie", "SOUS CATEGORIE",
                                    "\ufeffSous catégorie "])
def test_headers_compare_without_case_accents_spaces_dashes_or_underscores(header):
    assert v.normalize_header(header) == "souscategorie"


def test_header_cells_with_newlines_and_double_spaces():
    assert v.normalize_header("Code\n postal  ") == "codepostal"
    assert v.normalize_header("N° SIRET") == "nsiret"
    assert v.normalize_header("Œuvre") == "oeuvre"


def test_slugify_like_django_on_de_accented_text(series):
    slugs = v.slugify(series(
        "Éducation – Formation – E-learning", "Artisanat d’art", "Artisanat d'art", "Arts & Spectacles",
        "  Hôtellerie / Restauration  ", "Œuvres &amp; Co", "---", None,
    ))
    assert as_list(slugs) == [
        "education-formation-e-learning", "artisanat-dart", "artisanat-dart", "arts-spectacles",
        "hotellerie-restauration", "oeuvres-co", None, None,
    ]


def test_slugify_keeps_the_index_and_repeated_values():
    slugs = v.slugify(pd.Series(["Santé", "Santé", None, "Santé"], index=[7, 7, 3, 1], dtype=object))
    assert slugs.index.tolist() == [7, 7, 3, 1] and as_list(slugs) == ["sante", "sante", None, "sante"]


def test_decode_html_entities(series):
    decoded = v.decode_html_entities(series("Arts &amp; Métiers", "R&D", "&eacute;t&eacute;", None, "plain"))
    assert as_list(decoded) == ["Arts & Métiers", "R&D", "été", None, "plain"]


# ---------------------------------------------------------------- numbers


def test_parse_decimal_reads_french_and_english_notations(series):
    parsed = v.parse_decimal(series(
        "12,6392", "12.6392", "-4,5", "+4,5", "1 234,5", "1\u00a0234,5", "1\u202f234,5", "1 234 567",
        "1.234.567,89", "1,234.56", "1.234.567", "1,234,567", "1.234", "1,234", ",5", "1,5E-3", "42",
    ))
    assert parsed.values.tolist() == [
        12.6392, 12.6392, -4.5, 4.5, 1234.5, 1234.5, 1234.5, 1234567.0,
        1234567.89, 1234.56, 1234567.0, 1234567.0, 1.234, 1.234, 0.5, 0.0015, 42.0,
    ]
    assert parsed.values.dtype == "float64" and not parsed.invalid.any()


def test_parse_decimal_flags_non_numbers_but_not_empty_cells(series):
    parsed = v.parse_decimal(series("abc", "1.234.5", "1,2,3", "1 2", "12 €", "inf", "-Infinity",
                                    "", "  ", None, "3,5"))
    assert parsed.invalid.tolist() == [True] * 7 + [False] * 4
    assert parsed.values.isna().tolist() == [True] * 10 + [False]


def test_parse_integer_accepts_zero_fractions_only(series):
    parsed = v.parse_integer(series("12", "1 200", "1.0", "12,0", "-3", "1.5", "1.000", "abc", "", None))
    assert as_list(parsed.values) == [12, 1200, 1, 12, -3, None, None, None, None, None]
    assert parsed.invalid.tolist() == [False] * 5 + [True, True, True, False, False]
    assert parsed.values.dtype == "Int64"


# ---------------------------------------------------------------- dates


def test_parse_date_reads_day_first_iso_and_excel_serials(series):
    parsed = v.parse_date(series(
        "31/12/2024", "1/2/2024", "01-02-2024", "01.02.2024", "2024-03-01", "2024-03-01 10:15:00",
        "2024-03-01T10:15:00", "45123", "45123.0", "45123.75", "31/12/9999",
    ))
    assert as_dates(parsed.values) == [
        date(2024, 12, 31), date(2024, 2, 1), date(2024, 2, 1), date(2024, 2, 1), date(2024, 3, 1),
        date(2024, 3, 1), date(2024, 3, 1), date(2023, 7, 16), date(2023, 7, 16), date(2023, 7, 16),
        date(9999, 12, 31),
    ]
    assert not parsed.invalid.any()
    assert str(parsed.values.dtype) == "datetime64[us]"
    assert (parsed.values == parsed.values.dt.normalize()).all()


def test_parse_date_never_reads_month_first_nor_impossible_dates(series):
    parsed = v.parse_date(series("31/02/2024", "12/31/2024", "2024-02-30", "01/02-2024", "01/02/24", "hier",
                                 "", None))
    assert parsed.invalid.tolist() == [True] * 6 + [False, False]
    assert parsed.values.isna().all()


@pytest.mark.parametrize(("serial", "expected"), [
    ("1", date(1900, 1, 1)),
    ("59", date(1900, 2, 28)),
    ("60", None),  # Excel's 29/02/1900 never existed
    ("61", date(1900, 3, 1)),
    ("2958465", date(9999, 12, 31)),
    ("2958466", None),
    ("0", None),
    ("2024", None),  # a bare year, not the serial of 16/07/1905
])
def test_parse_date_excel_serial_range(serial, expected):
    parsed = v.parse_date(pd.Series([serial], dtype=object))
    assert as_dates(parsed.values) == [expected]
    assert parsed.invalid.tolist() == [expected is None]


# ---------------------------------------------------------------- booleans, e-mails, URLs


def test_parse_bool(series):
    parsed = v.parse_bool(series("oui", "NON", "True", "false", "Vrai", "faux", "1", "0", "1.0", "0.0",
                                 "yes", "No", "O", "n", "Y", "x", "X", "", None, "peut-être"))
    assert as_list(parsed.values) == [True, False, True, False, True, False, True, False, True, False,
                                      True, False, True, False, True, True, True, None, None, None]
    assert parsed.invalid.tolist() == [False] * 19 + [True]
    assert parsed.values.dtype == "boolean"


def test_parse_email_lowercases_the_domain_only(series):
    parsed = v.parse_email(series(" Awa.Traore@Exemple.ML ", "contact@boulangerie-dupont.fr", "", None))
    assert as_list(parsed.values) == ["Awa.Traore@exemple.ml", "contact@boulangerie-dupont.fr", None, None]
    assert not parsed.invalid.any()


@pytest.mark.parametrize("raw", ["pas-un-email", "a@b", "a b@c.fr", "a@b c.fr", "a@b@c.fr", "a@b..fr",
                                 "a@b.fr,c@d.fr", "Awa <awa@exemple.ml>", "x" * 250 + "@b.fr"])
def test_parse_email_rejects(raw):
    parsed = v.parse_email(pd.Series([raw], dtype=object))
    assert parsed.invalid.tolist() == [True] and parsed.values.isna().all()


def test_parse_url_adds_https_when_there_is_no_scheme(series):
    parsed = v.parse_url(series("www.foo.fr", "foo.fr/contact?x=1", "http://foo.fr", "HTTPS://www.Foo.fr:8443/a",
                                "pas une url", "localhost", "https://intranet", "contact@foo.fr", "ftp://foo.fr",
                                None))
    assert as_list(parsed.values) == ["https://www.foo.fr", "https://foo.fr/contact?x=1", "http://foo.fr",
                                      "https://www.Foo.fr:8443/a", None, None, None, None, None, None]
    assert parsed.invalid.tolist() == [False] * 4 + [True] * 5 + [False]


# ---------------------------------------------------------------- phones


@pytest.mark.parametrize(("raw", "region", "expected"), [
    ("70 12 34 56", "ML", "+22370123456"),
    ("+223 70-12-34-56", "ML", "+22370123456"),
    ("0022370123456", "ML", "+22370123456"),
    ("00223 70 12 34 56", "ML", "+22370123456"),
    ("0022370123456", "FR", "+22370123456"),
    ("0022370123456", "US", "+22370123456"),  # US dials 011, "00" still means international
    ("22370123456.0", "ML", "+22370123456"),  # Excel float artefact
    ("0612345678", "ML", None),  # a French number is never made Malian
    ("0612345678", "FR", "+33612345678"),
    ("+33 6 12 34 56 78", "ML", "+33612345678"),
    ("+33 6 12 34 56 78", "FR", "+33612345678"),
    ("13812345678", "ML", None),
    ("+86 138 1234 5678", "ML", "+8613812345678"),
    ("12", "ML", None),
    ("pas de téléphone", "ML", None),
])
def test_parse_phone_returns_e164_or_invalid(raw, region, expected):
    parsed = v.parse_phone(pd.Series([raw], dtype=object), default_region=region)
    assert as_list(parsed.values) == [expected]
    assert parsed.invalid.tolist() == [expected is None]


def test_parse_phone_parses_each_distinct_value_once(series, monkeypatch):
    seen = []
    real_parse = phones.phonenumbers.parse

    def counting_parse(number, region=None, *args, **kwargs):
        seen.append(number)
        return real_parse(number, region, *args, **kwargs)

    monkeypatch.setattr(phones.phonenumbers, "parse", counting_parse)
    raw = series("70 12 34 56", " 70 12 34 56", None, "0612345678", "70 12 34 56", "")
    parsed = v.parse_phone(raw)
    assert as_list(parsed.values) == ["+22370123456", "+22370123456", None, None, "+22370123456", None]
    assert parsed.invalid.tolist() == [False, False, False, True, False, False]
    # The valid Malian number is decided by the metadata route; the invalid one, once, by libphonenumber.
    assert seen == ["0612345678"]


def _exactly(values: pd.Series) -> list:
    """Values with their types, pd.NA told from NaN and None."""
    return ["<NA>" if x is pd.NA else (type(x).__name__, x) for x in values]


def assert_same_as_general_path(series, parser, cells: list, **options) -> v.Parsed:
    """The parser's result for these cells (plain ones take its branch for cells that need no cleaning)
    equals its general path's, which the same cells take next to an empty one: values, their types, NA,
    errors, the index kept (duplicate labels included); the input is left as it was. Returns the result."""
    raw = series(*cells)
    raw.index = pd.Index([7] * len(cells))
    before = raw.copy()
    result, general = parser(raw, **options), parser(series(*cells, None), **options)
    assert _exactly(result.values) == _exactly(general.values)[:-1]
    assert result.invalid.tolist() == general.invalid.tolist()[:-1] and result.invalid.dtype == bool
    assert result.values.dtype == general.values.dtype == object
    assert list(result.values.index) == list(result.invalid.index) == [7] * len(cells)
    pd.testing.assert_series_equal(raw, before)
    return result


def assert_same_result(parsed: v.Parsed, expected: v.Parsed) -> None:
    """Same values (with their types, NA told from NaN and None) and the same errors."""
    assert _exactly(parsed.values) == _exactly(expected.values) and parsed.values.dtype == expected.values.dtype
    assert parsed.invalid.tolist() == expected.invalid.tolist() and parsed.invalid.dtype == bool


PLAIN_EMAILS = ["contact@exemple.fr", "o'brien+news@mail.co.uk", "a.b-c_d@sub-domain.example.com", "X@y.fr"]


@pytest.mark.parametrize("odd", [
    [], ["Contact@Exemple.FR"], [" a@b.fr"], ["a@b.fr "], ["'=x@y.fr"], [""], ["None"], ["a@b.fr\nc@d.fr", "bad"],
    ["a" * 250 + "@b.fr"], ["pas-un-email"], ["a@b"], [None], ["née@exemple.fr"], ["a@exemple.fr\r"],
])
def test_emails_that_need_no_cleaning_get_the_same_result_as_the_others(series, odd):
    """A column of addresses that are valid as they stand is checked by one match; any other cell (to trim,
    to lower-case, missing, invalid, with a line break that could pass for two addresses) sends the whole
    column down the general path: the results are those of that path either way."""
    cells = PLAIN_EMAILS + odd
    result = assert_same_as_general_path(series, v.parse_email, cells)
    assert as_list(result.values)[:len(PLAIN_EMAILS)] == PLAIN_EMAILS


PLAIN_SITES = ["www.exemple.fr", "exemple.fr/contact?x=1#haut", "http://exemple.fr", "https://www.exemple.fr:8443/a",
               "sous.domaine.exemple.co.uk/chemin/redirect?u=http://autre.fr", "www.née.fr"]


@pytest.mark.parametrize("odd", [
    [], ["HTTPS://www.Foo.fr"], [" www.a.fr"], ["www.a.fr "], ["'=www.a.fr"], [""], ["None"], ["nan"],
    ["www.a.fr\nwww.b.fr", "bad"], ["ftp://a.fr"], ["a+b://a.fr"], ["localhost"], ["contact@a.fr"],
    ["www.a.fr\r"], ["www.a.fr:port"], [None], ["www.a.fr\u00a0"],
])
def test_sites_that_need_no_cleaning_get_the_same_result_as_the_others(series, odd):
    """A column of sites valid as they stand (with http(s):// in lower case or no scheme) is checked by one
    match; any other cell sends the whole column down the general path: the results are that path's."""
    cells = PLAIN_SITES + odd
    result = assert_same_as_general_path(series, v.parse_url, cells)
    assert as_list(result.values)[:len(PLAIN_SITES)] == [
        site if site.startswith("http") else "https://" + site for site in PLAIN_SITES]


# ---------------------------------------------------------------- SIREN, SIRET (Luhn)


def test_parse_siren(series):
    parsed = v.parse_siren(series("732 829 320", "732829320.0", "732.829.320", "732\u00a0829\u00a0320",
                                  "010000008", "10000008", "123456789", "7328293200", "ABC", "", None))
    assert as_list(parsed.values) == ["732829320"] * 4 + ["010000008"] + [None] * 6
    # a SIREN that lost its leading zero (10000008) is not padded back
    assert parsed.invalid.tolist() == [False] * 5 + [True] * 4 + [False, False]


def test_parse_siret_luhn_and_la_poste_rule(series):
    parsed = v.parse_siret(series(
        "73282932000074", "552 100 554 00013", "55210055400013.0",
        "35600000049837",  # La Poste: not Luhn, digit sum 45
        "35600000000048",  # La Poste head office: Luhn
        "73282932000075",  # bad check digit
        "35600000049838",  # La Poste, digit sum 46
        "73282932110006",  # Luhn-valid as 14 digits but its SIREN 732829321 is not
        "7328293200007", None,
    ))
    assert as_list(parsed.values) == ["73282932000074", "55210055400013", "55210055400013",
                                      "35600000049837", "35600000000048", None, None, None, None, None]
    assert parsed.invalid.tolist() == [False] * 5 + [True] * 4 + [False]


def _as_written_by_hand(cells: list[str]) -> list[str]:
    """The same identifiers as people type them or Excel stores them: what cleaning removes again."""
    ways = [lambda c: f" {c}", lambda c: f"{c}.0", lambda c: f"{c[:3]}\u00a0{c[3:]}",
            lambda c: f"{c[:3]}.{c[3:6]}.{c[6:]}"]
    return [ways[i % len(ways)](cell) for i, cell in enumerate(cells)]


@pytest.mark.parametrize(("parser", "width", "cells", "expected"), [
    (v.parse_siret, 14, ["73282932000074", "35600000049837", "35600000000048", "73282932000075",
                         "35600000049838", "73282932110006", "00000000000000"],
     ["73282932000074", "35600000049837", "35600000000048", None, None, None, "00000000000000"]),
    (v.parse_siren, 9, ["732829320", "010000008", "123456789", "000000000"],
     ["732829320", "010000008", None, "000000000"]),
])
def test_identifiers_of_plain_digits_get_the_same_result_as_identifiers_to_clean(series, parser, width, cells,
                                                                                   expected):
    """A column whose every cell is `width` ASCII digits skips cleaning; the same identifiers next to an
    empty cell, one of the wrong width, written with spaces, dots or Excel's ".0", or as a subclass of str
    take the general path, and get the same values and errors."""
    plain = assert_same_as_general_path(series, parser, cells)
    assert as_list(plain.values) == expected and plain.invalid.tolist() == [e is None for e in expected]
    assert_same_as_general_path(series, parser, [*cells, cells[-1][:-1], cells[-1] + "0"])
    assert_same_result(parser(series(*_as_written_by_hand(cells))), plain)
    assert_same_result(parser(pd.Series([np.str_(cell) for cell in cells], dtype=object)), plain)


@pytest.mark.parametrize("pad_french", [True, False])
def test_postal_codes_of_plain_digits_get_the_same_result_as_codes_to_clean(series, pad_french):
    cells = ["69001", "1400", "0123", "123456", "1", "97411"]
    plain = assert_same_as_general_path(series, v.parse_postal_code, cells, pad_french=pad_french)
    assert as_list(plain.values) == (["69001", "01400", "00123", None, None, "97411"] if pad_french
                                     else ["69001", None, None, None, None, "97411"])
    written = [" 69001", "1400.0", "0123 ", "123 456", "'1", "97\u00a0411"]
    assert_same_result(v.parse_postal_code(series(*written), pad_french=pad_french), plain)
    assert_same_as_general_path(series, v.parse_postal_code, [*cells, "6 9"], pad_french=pad_french)


# ---------------------------------------------------------------- NAF, postal codes


def test_parse_naf(series):
    parsed = v.parse_naf(series("6201Z", "62.01z", "62 01Z", "1.11", "1.11Z", "01.11", "10.2", "6201",
                                "ABC", "620", "62.011", "6201ZZ", None))
    assert as_list(parsed.values) == ["62.01Z", "62.01Z", "62.01Z", "01.11", "01.11Z", "01.11", "10.20",
                                      "62.01", None, None, None, None, None]
    assert parsed.invalid.tolist() == [False] * 8 + [True] * 4 + [False]


def test_parse_postal_code(series):
    parsed = v.parse_postal_code(series("1400", "1400.0", "75001", "01400", "75 001", "2A004", "750011",
                                        "400", "٦٩٠٠١", "", None))
    assert as_list(parsed.values) == ["01400", "01400", "75001", "01400", "75001"] + [None] * 6
    assert parsed.invalid.tolist() == [False] * 5 + [True] * 4 + [False, False]


def test_parse_postal_code_without_french_padding():
    parsed = v.parse_postal_code(pd.Series(["1400", "75001"], dtype=object), pad_french=False)
    assert as_list(parsed.values) == [None, "75001"] and parsed.invalid.tolist() == [True, False]


# ---------------------------------------------------------------- lengths, formula neutralising


def test_check_max_length(series):
    assert v.check_max_length(series("abc", "abcd", "abcde", None), 4).tolist() == [False, False, True, False]


def test_neutralize_formula_prefixes_every_cell_starting_with_a_formula_character():
    raw = pd.Series(["=HYPERLINK(\"x\")", "+33612345678", "-4,5", "@SUM(A1)", "\tx", "\rx", "ok", "a=b",
                     None, 5], dtype=object)
    assert v.neutralize_formula(raw).tolist() == [
        "'=HYPERLINK(\"x\")", "'+33612345678", "'-4,5", "'@SUM(A1)", "'\tx", "'\rx", "ok", "a=b", None, 5]


def test_neutralize_formula_leaves_numeric_columns_alone():
    numbers = pd.Series([1, -2, 3])
    assert v.neutralize_formula(numbers).tolist() == [1, -2, 3]


def test_neutralized_cells_read_back_unchanged():
    raw = pd.Series(["=1+1", "-4,5", "texte"], dtype=object)
    assert v.clean_text(v.neutralize_formula(raw)).tolist() == raw.tolist()


# ---------------------------------------------------------------- common behaviour


PARSERS = [v.parse_decimal, v.parse_integer, v.parse_date, v.parse_bool, v.parse_email, v.parse_url,
           v.parse_phone, v.parse_siren, v.parse_siret, v.parse_naf, v.parse_postal_code]


@pytest.mark.parametrize("parser", PARSERS, ids=lambda p: p.__name__)
def test_parsers_keep_the_index_and_never_flag_empty_cells(parser, series):
    raw = series("garbage ###", None, "", "   ", "None", "NULL").set_axis(["b", "b", "a", "z", "y", "x"])
    parsed = parser(raw)
    assert parsed.values.index.tolist() == parsed.invalid.index.tolist() == ["b", "b", "a", "z", "y", "x"]
    assert parsed.invalid.tolist() == [True, False, False, False, False, False]
    assert parsed.invalid.dtype == bool and parsed.values.isna().all()


TEXT_FUNCTIONS = [v.clean_text, v.slugify, v.decode_html_entities, lambda s: v.check_max_length(s, 3),
                  v.neutralize_formula]


@pytest.mark.parametrize("function", PARSERS + TEXT_FUNCTIONS)
@pytest.mark.parametrize("raw", [pd.Series([None, None], dtype=object), pd.Series([], dtype=object)],
                         ids=["all-missing", "empty"])
def test_columns_without_any_value(function, raw):
    result = function(raw)
    for out in (result.values, result.invalid) if isinstance(result, v.Parsed) else (result,):
        assert len(out) == len(raw) and not out.astype(object).fillna(False).astype(bool).any()


def test_mixed_series_keeps_row_alignment(series):
    raw = series("12,5", None, "x", "1 000", "", "-3").set_axis([5, 5, 4, 3, 2, 1])
    parsed = v.parse_decimal(raw)
    assert as_list(parsed.values) == [12.5, None, None, 1000.0, None, -3.0]
    assert parsed.invalid.tolist() == [False, False, True, False, False, False]


def test_on_distinct_gives_the_same_result_as_the_parser():
    raw = v.clean_text(pd.Series(["6201Z", "6201Z", None, "ABC", "6201Z", "ABC", "1.11"], dtype=object))
    direct, distinct = v.parse_naf(raw), v.on_distinct(v.parse_naf, raw)
    assert as_list(distinct.values) == as_list(direct.values)
    assert distinct.invalid.tolist() == direct.invalid.tolist()


_MIXED_CELLS = ["oui", "non", "1", " 12,5 ", "1 000", "2020-01-02", "02/01/2020", "6201Z", "1.11", "www.exemple.fr",
                "a@b.fr", "bad@", "70 12 34 56", "+33 4 77 50 00 00", "75001", "1400.0", "732829320",
                "73282932000074", "", "NULL", "'=cmd", 1, 1.0, True, 0, 12.5, None, np.nan]


@pytest.mark.parametrize("kind", ["integer", "decimal", "date", "bool", "email", "url", "siren", "siret", "naf",
                                  "postal_code", "phone"])
def test_on_distinct_spreads_the_results_of_the_distinct_values(kind):
    """Column after column, each cell gets its distinct value's result: the same values, dtype, missing
    markers and invalid flags as parsing the distinct values alone; the same values and invalid flags as
    parsing the column itself."""
    from nightshift.imports.validate import _KIND_PARSERS

    parser, options = (v.parse_phone, {"default_region": "ML"}) if kind == "phone" else (_KIND_PARSERS[kind][0], {})
    rng = np.random.default_rng(len(kind))
    for chunk in range(25):
        choices = rng.choice(len(_MIXED_CELLS), size=rng.integers(1, 8), replace=False)
        cells = [_MIXED_CELLS[i] for i in rng.choice(choices, size=rng.integers(3, 40))]
        raw = pd.Series(cells, dtype=object, index=range(chunk, chunk + len(cells)))
        parsed, direct = v.on_distinct(parser, raw, **options), parser(raw, **options)
        assert as_list(parsed.values) == as_list(direct.values) and parsed.invalid.tolist() == direct.invalid.tolist()
        assert parsed.values.index.equals(raw.index) and parsed.invalid.index.equals(raw.index)
        found = v.repeated(raw)
        if found is None:
            continue
        codes, distinct = found
        alone = parser(distinct, **options)
        expected = pd.Series(pd.api.extensions.take(alone.values.array, codes, allow_fill=True), index=raw.index)
        assert parsed.values.dtype == expected.dtype
        assert [repr(x) for x in parsed.values] == [repr(x) for x in expected]
        assert parsed.invalid.tolist() == [c >= 0 and bool(alone.invalid.iloc[c]) for c in codes]


def test_on_distinct_parses_each_distinct_value_once_per_call():
    seen: list[list] = []

    def counting_parser(s: pd.Series) -> v.Parsed:
        seen.append(s.tolist())
        return v.parse_integer(s)

    flags = v.on_distinct(counting_parser, pd.Series([True, True, pd.NA], dtype="boolean"))
    numbers = v.on_distinct(counting_parser, pd.Series([1, 1, 7, 7], dtype="int64"))
    texts = v.on_distinct(counting_parser, pd.Series(["7", "1", "1", "7"], dtype=object))
    again = v.on_distinct(counting_parser, pd.Series([7, 1, 1, 7], dtype="int64"))
    # 1 is not True as a cell, nor "1": each its own parse; nothing is kept from one call for the next.
    assert seen == [[True], [1, 7], ["7", "1"], [7, 1]]
    assert as_list(flags.values) == [None, None, None] and flags.invalid.tolist() == [True, True, False]
    assert as_list(numbers.values) == [1, 1, 7, 7] and not numbers.invalid.any()
    assert as_list(texts.values) == [7, 1, 1, 7] and as_list(again.values) == [7, 1, 1, 7]
    # Options are part of what is parsed: a Malian number is not a French one.
    local = pd.Series(["70 12 34 56", "70 12 34 56"], dtype=object)
    assert as_list(v.on_distinct(v.parse_phone, local, default_region="ML").values) == ["+22370123456"] * 2
    assert v.on_distinct(v.parse_phone, local, default_region="FR").invalid.all()


def test_cells_of_several_types_in_one_column_are_not_taken_for_one_another():
    """A spreadsheet column holding True and 1 (equal to a hash table): each cell parsed as itself."""
    raw = pd.Series([True, 1, True, 1, "x", "x"], dtype=object)
    assert v.repeated(raw) is None
    parsed = v.on_distinct(v.parse_integer, raw)
    assert as_list(parsed.values) == [None, 1, None, 1, None, None]
    assert parsed.invalid.tolist() == [True, False, True, False, True, True]


def test_large_columns_are_parsed_in_bulk():
    rng = np.random.default_rng(7)
    n = 200_000
    cents = rng.integers(0, 10**8, n)
    # French notation, a NBSP as thousands separator on every third row
    text = [(f"{c // 100:,}".replace(",", "\u00a0") if i % 3 == 0 else f"{c // 100}") + f",{c % 100:02d}"
            for i, c in enumerate(cents)]
    parsed = v.parse_decimal(pd.Series(text, dtype=object))
    assert not parsed.invalid.any()
    np.testing.assert_allclose(parsed.values.to_numpy(), cents / 100, rtol=0, atol=1e-6)

    sirens = pd.Series(rng.integers(10**8, 10**9, n).astype(str))
    expected = np.array([_luhn_ok(x) for x in sirens])
    parsed = v.parse_siren(sirens)
    assert (parsed.values.notna().to_numpy() == expected).all()
    assert (parsed.invalid.to_numpy() == ~expected).all()


def _luhn_ok(digits: str) -> bool:
    """Reference Luhn, one string at a time."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = int(char) * (2 if position % 2 else 1)
        total += digit - 9 if digit > 9 else digit
    return total % 10 == 0


def test_repeated_factorizes_columns_whose_values_repeat_and_skips_distinct_ones():
    n = 10_000
    cities = pd.Series(["Lyon", "Nîmes", None, "Béziers"] * (n // 4), dtype=object)
    codes, distinct = v.repeated(cities)
    assert distinct.tolist() == ["Lyon", "Nîmes", "Béziers"]
    assert (distinct.to_numpy()[codes[codes >= 0]] == cities.dropna().to_numpy()).all()
    assert (codes == -1).sum() == n // 4
    emails = pd.Series([f"contact{i}@exemple.fr" for i in range(n)], dtype=object)
    assert v.repeated(emails) is None
    # Distinct at first sight but half repeats: the whole column decides, not only the sample.
    half = pd.Series([f"n{i % (n // 2)}" for i in range(n)], dtype=object)
    assert len(v.repeated(half)[1]) == n // 2


def test_bounded_shortens_long_texts_to_the_limit_and_keeps_them_distinct():
    texts = pd.Series(["court", None, "x" * 40 + "A", "x" * 40 + "B", "y" * 30], dtype=object)
    result = v.bounded(texts, 30)
    assert result[0] == "court" and pd.isna(result[1]) and result[4] == "y" * 30
    assert result[2] != result[3] and len(result[2]) == len(result[3]) == 30
    assert result[2].startswith("x" * 13 + "~")
    assert v.bounded(texts, 30).equals(result)  # the same text always gives the same bounded text


def test_slugs_fit_every_slug_column():
    from nightshift.db.schema import categories, cities, subcategories

    assert {t.c.slug.type.length for t in (categories, subcategories, cities)} == {v.SLUG_MAX_LENGTH}
    slug = v.slugify(pd.Series(["Œuvre " * 50], dtype=object))[0]  # "oeuvre-" × 50: 349 characters
    assert len(slug) == v.SLUG_MAX_LENGTH and slug.startswith("oeuvre-oeuvre")
