"""The reader on the real files users of the old system imported (read in place, never copied)."""

from nightshift.imports.profiles import PROFILES
from nightshift.imports.reading import open_table

LIMITS = {"max_bytes": 200 * 1024 * 1024, "max_rows": 1_000_000}


def rows_of(path, score):
    info, chunks = open_table(path, score_header=score, **LIMITS)
    frames = list(chunks)
    return info, frames


def test_departements_xlsx_keeps_text_codes(real_samples):
    info, frames = rows_of(real_samples / "foxreviews" / "departements_france.xlsx",
                           lambda cells: float({"code", "nom"} <= {str(c).strip() for c in cells}))
    frame = frames[0].frame
    assert (info.file_format, info.sheet, info.header, len(frame)) == ("xlsx", "Departements", ["code", "nom"], 101)
    assert {"2A", "2B", "971", "976", "01"} <= set(frame["code"])


def test_legacy_xls_with_messy_headers_reads(real_samples):
    info, frames = rows_of(real_samples / "foxreviews" / "int_courts_naf_rev_2.xls",
                           lambda cells: float(any(str(c).strip() == "Code" for c in cells)))
    assert info.file_format == "xls" and info.header_line == 1
    codes = [c for f in frames for c in f.frame["Code"].dropna()]
    assert "SECTION A" in codes and "42.21Z" in codes and "42.21" in codes
    assert frames[0].lines[0] >= 2


def test_real_csvs_line_numbers_and_encoding(real_samples):
    info, frames = rows_of(real_samples / "foxreviews" / "categorie.csv", PROFILES["categories"].score_header)
    assert (info.encoding, info.delimiter, info.header_line) == ("utf-8", ",", 1)
    assert sum(len(f.frame) for f in frames) == 2236 and frames[0].lines[0] == 2
    info, frames = rows_of(real_samples / "foxreviews" / "villes france.csv", PROFILES["cities"].score_header)
    assert info.header == ["Villes"] and sum(len(f.frame) for f in frames) == 39192
