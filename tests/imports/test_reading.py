"""The reader on the real files users of the old system imported (read in place, never copied)."""

import io
import pickle
import random

import pytest

from nightshift.imports.profiles import PROFILES
from nightshift.imports.reading import (
    CsvLines,
    FileRejected,
    _complete_record,
    _first_undecodable,
    _mostly_utf8,
    _single_line_records,
    open_table,
)

LIMITS = {"max_bytes": 200 * 1024 * 1024, "max_rows": 1_000_000, "lang": "en"}


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


def numbered(frames) -> list[tuple]:
    return [(int(line), *row) for f in frames for line, row in zip(f.lines, f.frame.itertuples(index=False),
                                                                   strict=True)]


def test_c_parser_and_csv_module_paths_give_the_same_rows_and_lines(tmp_path):
    """Files whose records are one line each go through pandas' C parser; a quoted line break sends
    the whole file to the csv module. Both must give the same cells and the same line numbers."""
    body = ("Liste des entreprises;;\r\n\r\nnom;code_postal;ville\r\n"
            "Boulangerie Diallo;01000;Bamako\r\n\r\n   ;  ;\r\n\"Café; bar\";69001\r\n"
            "\"Garage \"\"Le Sahel\"\"\";75011;Paris;en trop\r\n")
    one_line_records = tmp_path / "simple.csv"
    one_line_records.write_bytes(body.encode("cp1252"))
    spanning = tmp_path / "spanning.csv"
    spanning.write_bytes((body + "\"Atelier\r\nsur deux lignes\";13001;Marseille\r\n").encode("cp1252"))

    assert _single_line_records(one_line_records, ";") == 8 and _single_line_records(spanning, ";") is None
    score = PROFILES["businesses"].score_header
    fast_info, fast = rows_of(one_line_records, score)
    slow_info, slow = rows_of(spanning, score)
    fast_rows, slow_rows = numbered(fast), numbered(slow)
    assert fast_info.header_line == slow_info.header_line == 3
    assert fast_rows == [(4, "Boulangerie Diallo", "01000", "Bamako"), (7, "Café; bar", "69001", ""),
                         (8, 'Garage "Le Sahel"', "75011", "Paris")]
    assert slow_rows == [*fast_rows, (9, "Atelier\r\nsur deux lignes", "13001", "Marseille")]


def test_c_parser_refusing_the_shape_hands_over_to_the_csv_module(tmp_path):
    """A header ending with the delimiter and no data line as wide: pandas' C parser refuses the chunk;
    the csv module reads that chunk, with the same line numbers."""
    path = tmp_path / "trailing.csv"
    path.write_bytes(b"nom;code_postal;\r\nLyon;69001\r\n\r\nBron;69500\r\nVaulx;69120;x\r\n")
    assert _single_line_records(path, ";") is not None
    info, frames = rows_of(path, PROFILES["cities"].score_header)
    assert info.header == ["nom", "code_postal", "(colonne 3)"]
    assert numbered(frames) == [(2, "Lyon", "69001", ""), (4, "Bron", "69500", ""), (5, "Vaulx", "69120", "x")]


def test_quoted_field_closing_at_the_very_end_of_the_file_is_kept(tmp_path):
    """The end-of-file marker must not disturb a last record whose quoted field closes at the end,
    with or without a final line break."""
    score = PROFILES["cities"].score_header
    for ending in ("", "\n"):
        path = tmp_path / f"end{len(ending)}.csv"
        path.write_text('nom;code_postal\nLyon;69001\n"Saint-\nÉtienne";42000' + ending, encoding="utf-8")
        _, frames = rows_of(path, score)
        assert numbered(frames) == [(2, "Lyon", "69001"), (3, "Saint-\nÉtienne", "42000")]


def test_unclosed_quote_is_refused_with_the_line_it_opens_on(tmp_path):
    path = tmp_path / "open.csv"
    path.write_text('nom;code_postal\nLyon;69001\nBron;69500\n"Vaulx;69120\nVilleurbanne;69100\n', encoding="utf-8")
    _, chunks = open_table(path, score_header=PROFILES["cities"].score_header, **LIMITS)
    with pytest.raises(FileRejected) as raised:
        list(chunks)
    assert raised.value.code == "unclosed_quote" and "line 4" in raised.value.message


def test_bytes_neither_utf8_nor_windows_1252_are_refused_with_their_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes(b"nom;code_postal\nLyon;69001\nB\x81ziers;34500\n")
    with pytest.raises(FileRejected) as raised:
        open_table(path, score_header=PROFILES["cities"].score_header, **LIMITS)
    assert raised.value.code == "unknown_encoding" and "line 3" in raised.value.message


def test_a_quote_opening_on_a_line_with_an_even_number_of_quotes_is_a_clean_refusal(tmp_path):
    """Every line has an even number of quotes, but `;"69001` opens a quoted field that never closes:
    the line scan sees a line that is not a whole record, so the csv module reads the file and refuses
    it with the line."""
    path = tmp_path / "quote.csv"
    path.write_text('nom;code_postal\nLy"on;"69001\nBron;69500\n', encoding="utf-8")
    assert _single_line_records(path, ";") is None
    _, chunks = open_table(path, score_header=PROFILES["cities"].score_header, **LIMITS)
    with pytest.raises(FileRejected) as raised:
        [chunk.frame for chunk in chunks]
    assert raised.value.code == "unclosed_quote" and "line 2" in raised.value.message


@pytest.mark.parametrize("chunk_rows", [1, 2, 3, 25_000])
def test_a_quoted_field_spanning_lines_with_even_quote_counts_is_one_record_whatever_the_chunks(tmp_path,
                                                                                              chunk_rows):
    """`Gar"age;"69` opens a field that `001";Lyon` closes on the next line (each line has two quotes):
    one record, read by the csv module with its physical line numbers, however the file is chunked."""
    path = tmp_path / "villes.csv"
    path.write_text('nom;code_postal;ville\nBron;69500;Bron\nGar"age;"69\n001";Lyon\nVaulx;69120;Vaulx\n',
                    encoding="utf-8")
    assert _single_line_records(path, ";") is None
    _, chunks = open_table(path, score_header=PROFILES["cities"].score_header, max_bytes=10**6, lang="en",
                           max_rows=10, chunk_rows=chunk_rows)
    assert numbered(list(chunks)) == [(2, "Bron", "69500", "Bron"), (3, 'Gar"age', "69\n001", "Lyon"),
                                      (5, "Vaulx", "69120", "Vaulx")]


def test_a_file_refusal_travels_back_from_a_worker_process_intact():
    rejected = pickle.loads(pickle.dumps(FileRejected("unclosed_quote", "fr", file="villes.csv", line=3)))
    assert (type(rejected), rejected.code, rejected.params) == (FileRejected, "unclosed_quote",
                                                                 {"file": "villes.csv", "line": 3})
    assert str(rejected) == rejected.message and rejected.message.startswith("villes.csv : ligne 3 : un champ")


def test_a_windows_1252_file_with_a_utf8_looking_pair_stays_windows_1252(tmp_path):
    """"É" before a no-break space is a valid UTF-8 pair by chance; the file's other accents are not
    UTF-8, so the whole file is read as Windows-1252."""
    path = tmp_path / "villes.csv"
    path.write_bytes("nom;code_postal\nCAFÉ\xa0: Béziers;34500\nSète;34200\n".encode("cp1252"))
    info, frames = rows_of(path, PROFILES["cities"].score_header)
    assert info.encoding == "cp1252"
    assert list(frames[0].frame["nom"]) == ["CAFÉ\xa0: Béziers", "Sète"]


def test_the_first_undecodable_byte_is_located_exactly_across_read_blocks(tmp_path):
    """A character cut by the 1 MiB read boundary: the decoder holds its first bytes back, and the bad
    byte after it is still found at its own line and offset."""
    block = 1024 * 1024
    head = b"nom\n" + b"x" * (block - 4 - 3) + b"\n" + b"\xe2\x80"  # "’" cut after its second byte
    path = tmp_path / "cut.csv"
    path.write_bytes(head + b"\x99\xff\nsuite\n")
    assert _first_undecodable(path, "utf-8") == (3, block + 1)  # the \xff, before the line break after it
    path.write_bytes(head + b"\nsuite\n")  # the cut character never ends: its first byte is the bad one
    assert _first_undecodable(path, "utf-8") == (3, block - 2)


def test_chunks_of_raw_lines_skip_blank_lines_and_the_row_limit_counts_rows_not_lines(tmp_path):
    """The C parser's chunks are raw lines parsed where they are used: a chunk of blank lines gives no
    rows, a last line without a line break is read, and a file with more lines than imports.max_rows is
    refused only when it has more data rows (blank lines and lines of empty cells are not rows)."""
    path = tmp_path / "villes.csv"
    path.write_text("nom;code_postal\r\nLyon;69001\r\n" + "\r\n" * 5 + ";;\r\nBron;69500", encoding="utf-8")
    score = PROFILES["cities"].score_header
    assert _single_line_records(path, ";") == 9
    _, chunks = open_table(path, score_header=score, max_bytes=10**6, lang="en", max_rows=2, chunk_rows=3)
    assert numbered(list(chunks)) == [(2, "Lyon", "69001"), (9, "Bron", "69500")]
    _, chunks = open_table(path, score_header=score, max_bytes=10**6, lang="en", max_rows=1, chunk_rows=3)
    with pytest.raises(FileRejected) as raised:
        [chunk.frame for chunk in chunks]
    assert raised.value.code == "too_many_rows" and "imports.max_rows" in raised.value.message


def test_sheets_and_csv_module_records_are_chunked_with_their_lines_and_the_row_limit(tmp_path):
    """A sheet and a CSV the csv module reads (a quoted line break): blank rows are skipped and not
    counted, chunks of chunk_rows rows keep their lines, and a row beyond max_rows refuses the file."""
    from openpyxl import Workbook

    workbook = Workbook()
    for row in (["nom", "code_postal"], ["Lyon", "69001"], [None, None], ["Bron", "69500"], ["Vaulx", 69120]):
        workbook.active.append(row)
    sheet = tmp_path / "villes.xlsx"
    workbook.save(sheet)
    spanning = tmp_path / "villes.csv"
    spanning.write_text('nom;code_postal\nLyon;69001\n;\n"Br\non";69500\nVaulx;69120\n', encoding="utf-8")
    score = PROFILES["cities"].score_header
    for path, rows in ((sheet, [(2, "Lyon", "69001"), (4, "Bron", "69500"), (5, "Vaulx", "69120")]),
                       (spanning, [(2, "Lyon", "69001"), (4, "Br\non", "69500"), (6, "Vaulx", "69120")])):
        _, chunks = open_table(path, score_header=score, max_bytes=10**6, lang="en", max_rows=3, chunk_rows=2)
        chunks = list(chunks)
        assert [len(chunk.frame) for chunk in chunks] == [2, 1] and numbered(chunks) == rows
        _, chunks = open_table(path, score_header=score, max_bytes=10**6, lang="en", max_rows=2, chunk_rows=2)
        with pytest.raises(FileRejected) as raised:
            list(chunks)
        assert raised.value.code == "too_many_rows"


@pytest.mark.parametrize(("line", "whole"), [
    ('a;"b;c";d', True), ('"Garage ""Le Sahel""";75011\r', True), ('Le "Bon" coin;69002', True), ('"";";"', True),
    ('Ly"on;"69001', False), ('x";"y', False), ('"a"b;c', False), ('a;"b', False),
])
@pytest.mark.parametrize("delimiter", [";", ",", "\t", "|"])
def test_a_line_is_a_whole_record_when_every_quoted_field_closes_on_it(line, whole, delimiter):
    """What sends a file holding quotes to pandas' C parser (line by line) or to the csv module."""
    text = line.replace(";", delimiter).encode("utf-8")
    assert (_complete_record(delimiter).fullmatch(text) is not None) is whole


def _decoded_counts(data: bytes) -> tuple[int, int]:
    text = data.decode("utf-8", errors="replace")
    errors = text.count("\ufffd")
    return len(text) - sum(1 for byte in data if byte < 0x80) - errors, errors


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_file_is_mostly_utf8_by_the_decoders_counts(tmp_path, seed):
    """Characters and errors as `decode("utf-8", "replace")` counts them, on text mixing UTF-8,
    Windows-1252 and random bytes (cut-short sequences, overlong forms, surrogates, stray bytes)."""
    generator = random.Random(seed)
    words = ["é", "Œ", "’", "€", "a b", "ß", "É", "\xa0", "ア", "\u0800", "\uffff", "\U00010000", "\U0010ffff"]
    path = tmp_path / "mixed.csv"
    for _ in range(3000):
        parts = []
        for _ in range(generator.randint(1, 12)):
            encoding = generator.choice(["utf-8", "cp1252", None])
            if encoding is None:
                parts.append(bytes(generator.choices(range(256), k=generator.randint(1, 3))))
            else:
                parts.append(generator.choice(words).encode(encoding, errors="replace"))
        data = b"".join(parts)
        if "\ufffd".encode() in data:  # a real U+FFFD would count as an error when decoding
            continue
        path.write_bytes(data)
        characters, errors = _decoded_counts(data)
        assert _mostly_utf8(path) == (characters >= errors), data


@pytest.mark.parametrize("block_bytes", [1, 7, 4096])
def test_the_mixed_encoding_scan_keeps_characters_whole_across_blocks(tmp_path, monkeypatch, block_bytes):
    """A file without line breaks, read in blocks that cut its characters of 2, 3 and 4 bytes: 100 UTF-8
    ones against 60 Windows-1252 accents is mostly UTF-8; against 140 it is not."""
    from nightshift.imports import reading

    monkeypatch.setattr(reading, "DECODE_BLOCK_BYTES", block_bytes)
    path = tmp_path / "one-line.csv"
    utf8 = "é€😀é".encode() * 25  # 100 characters, no ASCII byte between them
    path.write_bytes(utf8 + "é".encode("cp1252") * 60)
    assert reading._mostly_utf8(path)
    path.write_bytes(utf8 + "é".encode("cp1252") * 140)
    assert not reading._mostly_utf8(path)


@pytest.mark.parametrize("seed", [1, 2])
def test_the_mixed_encoding_verdict_is_the_whole_files_whatever_the_blocks(tmp_path, monkeypatch, seed):
    """Read in blocks that cut characters anywhere, the counts add up to the decoder's for the whole
    file, so the verdict is the whole file's."""
    from nightshift.imports import reading

    monkeypatch.setattr(reading, "DECODE_BLOCK_BYTES", 5)
    generator = random.Random(seed)
    words = ["é", "Œ", "’", "€", "a b", "ß", "\xa0", "ア", "\U00010000", "x;y\n"]
    path = tmp_path / "mixed.csv"
    for _ in range(200):
        parts = [generator.choice(words).encode(generator.choice(["utf-8", "cp1252"]), errors="replace")
                 for _ in range(generator.randint(1, 40))]
        data = b"".join(parts)
        if "\ufffd".encode() in data:  # a real U+FFFD would count as an error when decoding
            continue
        path.write_bytes(data)
        characters, errors = _decoded_counts(data)
        assert reading._mostly_utf8(path) == (characters >= errors), data


@pytest.mark.parametrize("block_bytes", [1, 2, 1024 * 1024])
def test_a_replacement_character_written_in_the_file_is_a_utf8_character(tmp_path, monkeypatch, block_bytes):
    """One U+FFFD written in the text (valid UTF-8) against one Windows-1252 accent: mostly UTF-8, even
    when the read blocks cut the U+FFFD's three bytes; the accent is read as Windows-1252."""
    from nightshift.imports import reading

    monkeypatch.setattr(reading, "DECODE_BLOCK_BYTES", block_bytes)
    path = tmp_path / "villes.csv"
    path.write_bytes("nom;code_postal\nLyon \ufffd;69001\n".encode() + "Sète;34200\n".encode("cp1252"))
    info, frames = rows_of(path, PROFILES["cities"].score_header)
    assert info.encoding == "utf-8+cp1252"
    assert list(frames[0].frame["nom"]) == ["Lyon \ufffd", "Sète"]


class _CountedFile:
    """Stands for a path: what its `open` hands out counts the bytes read from it."""

    def __init__(self, data: bytes) -> None:
        self.data, self.bytes_read = data, 0

    def open(self, mode: str) -> io.BytesIO:
        counted = self

        class Handle(io.BytesIO):
            def read(self, size: int = -1) -> bytes:
                data = super().read(size)
                counted.bytes_read += len(data)
                return data

            def readline(self, size: int = -1) -> bytes:
                data = super().readline(size)
                counted.bytes_read += len(data)
                return data

        return Handle(self.data)


def test_the_line_scan_stops_at_the_first_cr_only_line_end(monkeypatch):
    """A file of CR-only lines (no LF to end a line) is refused for the C parser from its first block,
    not read whole; a CRLF cut by the block end is still a CRLF."""
    from nightshift.imports import reading

    monkeypatch.setattr(reading, "SCAN_BLOCK_BYTES", 64)
    cr_only = _CountedFile(b"nom;code_postal\r" + b"Lyon;69001\r" * 10_000)
    assert _single_line_records(cr_only, ";") is None
    assert cr_only.bytes_read == 64
    crlf = _CountedFile(b"nom;code_postal\r\n" + b"Lyon;69001\r\n" * 1_000)  # lines of 12 bytes: cut CRLFs
    assert _single_line_records(crlf, ";") == 1_001


@pytest.mark.parametrize("encoding", ["cp1252", "utf-8", "utf-8+cp1252"])
def test_a_chunk_of_raw_lines_reads_its_accents_whichever_parser_takes_it(encoding):
    """Windows-1252 lines are transcoded before pandas' C parser reads them; a chunk that parser refuses
    (every line narrower than the header) is read by the csv module from the original bytes: the same
    text either way."""
    rows = ["Œuvre d’art;Béziers;12 €", "Café;Sète;3 €"]
    codec = "cp1252" if encoding == "cp1252" else "utf-8"
    data = ("\n".join(rows) + "\n").encode(codec)
    if encoding == "utf-8+cp1252":  # UTF-8 with one Windows-1252 byte: read as that character
        data = data.replace("Sète".encode(), "Sète".encode("cp1252"))
    header = ["nom", "ville", "prix"]
    frame, lines = CsvLines(data, 2, "prix.csv", header, ";", encoding, "en").parse()
    assert frame.values.tolist() == [row.split(";") for row in rows] and list(lines) == [2, 3]
    narrow, lines = CsvLines(data, 2, "prix.csv", [*header, "note"], ";", encoding, "en").parse()
    assert narrow.values.tolist() == [[*row.split(";"), ""] for row in rows] and list(lines) == [2, 3]
