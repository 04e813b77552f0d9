"""Reading uploaded tables (CSV, XLSX, XLS, ODS) as raw text cells, in chunks, with file line numbers.

CSV: encoding by BOM → strict UTF-8 → UTF-8 mixed with cp1252 → cp1252 (not latin-1: € ’ œ live in
0x80–0x9F), damaged UTF-16 refused. Mixed means a UTF-8 BOM, or at least as many valid UTF-8 non-ASCII
characters as errors in the whole file, as Python's UTF-8 decoder counts them (one U+FFFD per error);
its bytes that are not UTF-8 are read as cp1252. Delimiter among `; , tab |` chosen by consistent field
counts and by the header matching the profile (not csv.Sniffer). Spreadsheets, recognised by content:
python-calamine (openpyxl read-only as fallback for .xlsx); the sheet and header row (first 30 rows)
that best match the profile. No type conversion happens here.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import logging
import math
import re
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path

import numpy as np
import pandas as pd

from nightshift.imports.messages import Rejection, message

HEADER_SEARCH_ROWS = 30
SAMPLE_RECORDS = 50
SAMPLE_BYTES = 256 * 1024
SCAN_BLOCK_BYTES = 4 * 1024 * 1024
# Smaller blocks for the scans that decode: a block's text then stays in the CPU's cache.
DECODE_BLOCK_BYTES = 1024 * 1024
DELIMITERS = (";", ",", "\t", "|")
# Bytes a cp1252 file cannot contain (undefined code points).
CP1252_UNDEFINED = b"\x81\x8d\x8f\x90\x9d"
ZIP_MAGIC, OLE_MAGIC = b"PK\x03\x04", b"\xd0\xcf\x11\xe0"
# Estimated bytes of sheet XML per cell, for the memory guard before a sheet is materialised.
XML_BYTES_PER_CELL = 20

csv.field_size_limit(2**31 - 1)
logger = logging.getLogger("nightshift.imports")

ScoreHeader = Callable[[list[str]], float]


class FileRejected(Rejection):
    """The whole file cannot be read. `code` is stable; the message says what to do."""


class TableChunk:
    """Rows of a table: `frame`, columns = header as written (deduplicated), raw str cells ("" or NA when
    empty); `lines`, the 1-based line (CSV) or row (spreadsheet) of each row.

    A chunk of a CSV that pandas' C parser reads may come as its raw lines (`CsvLines`), parsed where
    the rows are first used: a worker process parses the chunks it validates, so the import's own
    process neither parses nor pickles them."""

    def __init__(self, frame: pd.DataFrame | None = None, lines: np.ndarray | None = None, *,
                 raw: CsvLines | None = None) -> None:
        self._frame, self._lines, self._raw = frame, lines, raw

    def _parse(self) -> None:
        if self._raw is not None:
            self._frame, self._lines = self._raw.parse()
            self._raw = None

    @property
    def frame(self) -> pd.DataFrame:
        self._parse()
        return self._frame

    @property
    def lines(self) -> np.ndarray:
        self._parse()
        return self._lines


@dataclass
class TableInfo:
    path: Path
    file_format: str  # csv | xlsx | xls | ods
    encoding: str | None
    delimiter: str | None
    sheet: str | None
    header: list[str]
    header_line: int
    nul_bytes_removed: int = 0


def _unique_header(cells: Iterable[object]) -> list[str]:
    header: list[str] = []
    seen: Counter[str] = Counter()
    for index, cell in enumerate(cells):
        name = "" if cell is None else str(cell).strip()
        if not name:
            name = f"(colonne {index + 1})"
        seen[name] += 1
        header.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return header


def _detect_format(path: Path, head: bytes, lang: str) -> str:
    """By content, not by name: an .xlsx saved as .xls (or a spreadsheet named .csv) is read as what it is."""
    if head.startswith(ZIP_MAGIC):
        # An OpenDocument archive starts with its stored, uncompressed `mimetype` entry.
        is_ods = b"mimetypeapplication/vnd.oasis.opendocument" in head[:128] or path.suffix.lower() == ".ods"
        return "ods" if is_ods else "xlsx"
    if head.startswith(OLE_MAGIC):
        return "xls"
    if path.suffix.lower() in (".xlsx", ".xlsm", ".xls", ".ods"):
        raise FileRejected("not_a_spreadsheet", lang, file=path.name, suffix=path.suffix.lower())
    return "csv"


def open_table(path: Path, *, score_header: ScoreHeader, max_bytes: int, max_rows: int, lang: str,
               max_cells: int = 30_000_000, chunk_rows: int = 25_000) -> tuple[TableInfo, Iterator[TableChunk]]:
    """The table's description and its rows in chunks; a file that cannot be read raises FileRejected,
    in `lang`, when it is opened or as its chunks are read."""
    path = Path(path)
    size = path.stat().st_size
    if size > max_bytes:
        raise FileRejected("file_too_large", lang, file=path.name, size=size, limit=max_bytes)
    if size == 0:
        raise FileRejected("empty_file", lang, file=path.name)
    with path.open("rb") as handle:
        head = handle.read(SAMPLE_BYTES)
    file_format = _detect_format(path, head, lang)
    if file_format == "csv":
        return _open_csv(path, head, score_header, max_rows, chunk_rows, lang)
    return _open_spreadsheet(path, file_format, score_header, max_rows, max_cells, chunk_rows, lang)


# ---------------------------------------------------------------- CSV


# Mixed files (UTF-8 with some lines pasted from a Windows-1252 source): the bytes that are not UTF-8
# are read as Windows-1252, one character each, instead of turning the whole file into mojibake.
CP1252_FALLBACK = "nightshift-cp1252-fallback"
MIXED_SUFFIX = "+cp1252"
REPLACEMENT_CHARACTER = "\ufffd"
REPLACEMENT_BYTES = REPLACEMENT_CHARACTER.encode("utf-8")


def _decode_as_cp1252(error: UnicodeDecodeError) -> tuple[str, int]:
    return error.object[error.start:error.end].decode("cp1252", errors="replace"), error.end


codecs.register_error(CP1252_FALLBACK, _decode_as_cp1252)


def text_codec(encoding: str) -> tuple[str, str]:
    """(codec, errors) to open a file whose detected encoding is `encoding` (as recorded in the log)."""
    if encoding.endswith(MIXED_SUFFIX):
        return encoding.removesuffix(MIXED_SUFFIX), CP1252_FALLBACK
    return encoding, "strict"


def _first_undecodable(path: Path, encoding: str, skip: int = 0) -> tuple[int, int] | None:
    """(line, byte offset) of the first bytes `encoding` cannot decode, or None when it decodes all."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    line, offset = 1, 0
    with path.open("rb") as handle:
        handle.seek(skip)
        while True:
            block = handle.read(DECODE_BLOCK_BYTES)
            try:
                decoder.decode(block, final=not block)
            except UnicodeDecodeError as exc:
                # exc.object = bytes the decoder held back from the previous block (an unfinished
                # character, no line break in it) + this block.
                held_back = len(exc.object) - len(block)
                return line + _line_feeds(exc.object[:exc.start]), skip + offset - held_back + exc.start
            if not block:
                return None
            line += _line_feeds(block)
            offset += len(block)


def _holds_any(path: Path, byte_values: bytes) -> bool:
    with path.open("rb") as handle:
        while block := handle.read(SCAN_BLOCK_BYTES):
            if any(bytes([value]) in block for value in byte_values):
                return True
    return False


def _mostly_utf8(path: Path) -> bool:
    """True when the file's non-ASCII characters are at least as often valid UTF-8 as errors: a UTF-8 file
    with a few Windows-1252 lines. An error is what `decode("utf-8", "replace")` turns into one U+FFFD (a
    stray byte, or a sequence cut short); a U+FFFD written in the file is a character. A Windows-1252
    file can hold a valid UTF-8 pair by chance ("É" before a no-break space): one such pair among its
    accents does not make it UTF-8.

    The decoding stops once the verdict is known whatever the rest holds: each error it could still
    find takes a non-ASCII byte at least, each character two (a Windows-1252 file is known a third of
    the way in)."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    characters = errors = 0
    # Non-ASCII bytes not decoded yet, with the at most three the decoder holds back at a block's end.
    undecoded = _non_ascii_bytes(path) + 3
    tail = b""  # the two bytes before the block: a written U+FFFD may start there and end in the block
    with path.open("rb") as handle:
        while True:
            block = handle.read(DECODE_BLOCK_BYTES)
            text = decoder.decode(block, final=not block)
            scanned = tail + block
            replaced = text.count(REPLACEMENT_CHARACTER) - scanned.count(REPLACEMENT_BYTES)
            # The decoder holds back only non-ASCII bytes: the block's ASCII bytes are the text's ASCII.
            ascii_characters = _ascii_bytes(block)
            undecoded -= len(block) - ascii_characters
            characters += len(text) - ascii_characters - replaced
            errors += replaced
            if not block or characters >= errors + undecoded:
                return characters >= errors
            if errors > characters + undecoded // 2:
                return False
            tail = scanned[-2:]


def _ascii_bytes(block: bytes) -> int:
    return int(np.count_nonzero(np.frombuffer(block, dtype=np.uint8) < 0x80))


def _non_ascii_bytes(path: Path) -> int:
    count = 0
    with path.open("rb") as handle:
        while block := handle.read(SCAN_BLOCK_BYTES):
            count += len(block) - _ascii_bytes(block)
    return count


def _detect_encoding(path: Path, head: bytes, lang: str) -> str:
    """BOM → strict UTF-8 → UTF-8 mixed with Windows-1252 → Windows-1252; anything else is refused."""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        bad = _first_undecodable(path, "utf-16")
        if bad:
            raise FileRejected("utf16_damaged", lang, file=path.name, offset=bad[1])
        return "utf-16"
    sample = head.replace(b"\x00", b"")
    controls = sum(1 for b in sample[:65536] if b < 32 and b not in (9, 10, 13))
    nuls = head[:65536].count(b"\x00")
    if nuls > max(16, len(head[:65536]) * 0.01) or controls > max(16, len(sample[:65536]) * 0.05):
        raise FileRejected("not_tabular", lang, file=path.name)
    bom = head.startswith(codecs.BOM_UTF8)
    utf8 = "utf-8-sig" if bom else "utf-8"
    not_utf8 = _first_undecodable(path, "utf-8", skip=len(codecs.BOM_UTF8) if bom else 0)
    if not_utf8 is None:
        return utf8
    if bom or _mostly_utf8(path):
        logger.warning(message("log_mixed_encoding", lang, file=path.name, line=not_utf8[0]))
        return utf8 + MIXED_SUFFIX
    if not _holds_any(path, CP1252_UNDEFINED):
        return "cp1252"
    raise FileRejected("unknown_encoding", lang, file=path.name, line=not_utf8[0])


# Fed to the csv reader after the last line. NUL never reaches the reader otherwise (_NulStripper removes
# it), so this text cannot be data: alone it is a record of its own; appended to a cell, that cell was a
# quoted field still open at the end of the file.
_END_OF_FILE = "\x00end of file\x00"


class _NulStripper:
    """Line iterator that drops stray NUL bytes (counting them), then ends with the _END_OF_FILE line."""

    def __init__(self, lines: Iterable[str]) -> None:
        self.lines = iter(lines)
        self.removed = 0
        # A line break first, in case the file's last line has none: the end record stands alone.
        self.closing = ["\n", _END_OF_FILE]

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        try:
            line = next(self.lines)
        except StopIteration:
            if self.closing:
                return self.closing.pop(0)
            raise
        if "\x00" in line:
            self.removed += line.count("\x00")
            line = line.replace("\x00", "")
        return line


def _is_end(record: list[str], name: str, start: int, lang: str) -> bool:
    """True for the end-of-file record; a quoted field left open until the end of the file is refused."""
    if not record or not record[-1].endswith(_END_OF_FILE):
        return False
    if record != [_END_OF_FILE]:
        raise FileRejected("unclosed_quote", lang, file=name, line=start)
    return True


def _sample_records(text: str, delimiter: str) -> list[list[str]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    records = []
    try:
        for record in itertools.islice(reader, SAMPLE_RECORDS + 1):
            records.append(record)
    except csv.Error:
        pass
    # The last record of a truncated sample may be cut in the middle.
    return [r for r in records[:SAMPLE_RECORDS] if any(cell.strip() for cell in r)]


def _choose_delimiter(text: str, score_header: ScoreHeader, name: str, lang: str) -> tuple[str, int]:
    """Best delimiter and the index (among non-blank sample records) of the header record."""
    best: tuple[tuple, str, int] | None = None
    for preference, delimiter in enumerate(DELIMITERS):
        records = _sample_records(text, delimiter)
        if not records:
            continue
        header_index, header_score = 0, score_header(records[0])
        if header_score <= 0:
            for index, record in enumerate(records[:HEADER_SEARCH_ROWS]):
                score = score_header(record)
                if score > header_score:
                    header_index, header_score = index, score
        counts = Counter(len(r) for r in records[header_index:])
        modal_count, modal_frequency = counts.most_common(1)[0]
        consistency = modal_frequency / sum(counts.values())
        rank = (header_score > 0, header_score, modal_count > 1 and consistency, consistency, -preference)
        if best is None or rank > best[0]:
            best = (rank, delimiter, header_index)
    if best is None:
        raise FileRejected("no_header", lang, file=name)
    return best[1], best[2]


def _open_csv(path: Path, head: bytes, score_header: ScoreHeader, max_rows: int, chunk_rows: int,
              lang: str) -> tuple[TableInfo, Iterator[TableChunk]]:
    encoding = _detect_encoding(path, head, lang)
    codec, errors = text_codec(encoding)
    sample_text = head.decode(codec, errors="replace" if errors == "strict" else errors).replace("\x00", "")
    if not sample_text.strip():
        raise FileRejected("no_text", lang, file=path.name)
    delimiter, header_index = _choose_delimiter(sample_text, score_header, path.name, lang)

    records = _CsvRecords.of_file(path, encoding, delimiter, lang)
    header_record, header_line, non_blank = None, 0, -1
    for start, record in records:
        if any(cell.strip() for cell in record):
            non_blank += 1
            if non_blank == header_index:
                header_record, header_line = record, start
                break
    if header_record is None:
        records.close()
        raise FileRejected("no_header", lang, file=path.name)
    info = TableInfo(path, "csv", encoding, delimiter, None, _unique_header(header_record), header_line)
    line_count = _single_line_records(path, delimiter) if encoding != "utf-16" else None
    if line_count is not None:
        records.close()
        return info, _c_parser_chunks(info, max_rows, chunk_rows, line_count, lang)
    return info, _record_chunks(info, records, max_rows, chunk_rows, lang)


class _CsvRecords:
    """The records of a text file (or of lines of it) read by the csv module, each with the physical
    line it starts on."""

    def __init__(self, handle: io.TextIOBase, name: str, delimiter: str, lang: str, skip_lines: int = 0) -> None:
        self.name, self.lang = name, lang
        self.handle = handle
        self.lines = _NulStripper(self.handle)
        self.reader = csv.reader(self.lines, delimiter=delimiter)
        self.skipped = skip_lines
        self.records = self._records()

    @classmethod
    def of_file(cls, path: Path, encoding: str, delimiter: str, lang: str, skip_lines: int = 0) -> _CsvRecords:
        codec, errors = text_codec(encoding)
        handle = path.open("r", encoding=codec, errors=errors, newline="")
        for _ in range(skip_lines):
            handle.readline()
        return cls(handle, path.name, delimiter, lang, skip_lines)

    def _records(self) -> Iterator[tuple[int, list[str]]]:
        previous_end = self.skipped
        try:
            while True:
                try:
                    record = next(self.reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    near = self.skipped + self.reader.line_num
                    logger.info("%s: line %d: %s", self.name, near, exc)  # the csv module's own words
                    raise FileRejected("csv_structure", self.lang, file=self.name, line=near) from None
                start, previous_end = previous_end + 1, self.skipped + self.reader.line_num
                if _is_end(record, self.name, start, self.lang):
                    return
                yield start, record
        finally:
            self.handle.close()

    def __iter__(self) -> Iterator[tuple[int, list[str]]]:
        return self.records

    @property
    def nul_bytes_removed(self) -> int:
        return self.lines.removed

    def close(self) -> None:
        self.records.close()
        self.handle.close()


def _too_many_rows(path: Path, max_rows: int, lang: str) -> FileRejected:
    return FileRejected("too_many_rows", lang, file=path.name, limit=max_rows)


def _table_row(record: list[str], width: int) -> list[str] | None:
    """A record as a row of the table's width (short ones padded, extra cells dropped); None when blank."""
    if not "".join(record).strip():
        return None
    return record if len(record) == width else (record + [""] * width)[:width]


def _record_chunks(info: TableInfo, records: _CsvRecords, max_rows: int, chunk_rows: int,
                   lang: str) -> Iterator[TableChunk]:
    width = len(info.header)
    try:
        rows = ((start, _table_row(record, width)) for start, record in records)
        yield from _row_chunks(rows, info.path, info.header, max_rows, chunk_rows, lang)
        info.nul_bytes_removed = records.nul_bytes_removed
    finally:
        records.close()


def _row_chunks(rows: Iterable[tuple[int, list[object] | None]], path: Path, header: list[str], max_rows: int,
                chunk_rows: int, lang: str) -> Iterator[TableChunk]:
    """Chunks of `chunk_rows` rows with their lines, from (line, row) pairs where a blank row is None (not
    a row); the file is refused as soon as a row beyond max_rows is read."""
    kept: list[list[object]] = []
    line_numbers: list[int] = []
    data_rows = 0
    for line, row in rows:
        if row is None:
            continue
        data_rows += 1
        if data_rows > max_rows:
            raise _too_many_rows(path, max_rows, lang)
        kept.append(row)
        line_numbers.append(line)
        if len(kept) >= chunk_rows:
            yield _chunk(kept, line_numbers, header)
            kept, line_numbers = [], []
    if kept:
        yield _chunk(kept, line_numbers, header)


def _rows_frame(rows: list[list[object]], header: list[str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=header, dtype=object)


def _chunk(rows: list[list[object]], line_numbers: list[int], header: list[str]) -> TableChunk:
    return TableChunk(_rows_frame(rows, header), np.asarray(line_numbers, dtype=np.int64))


def _complete_record(delimiter: str) -> re.Pattern[bytes]:
    """A line that is one whole CSV record: each field quoted and closed ("" inside for a quote), or
    unquoted (a quote inside it is a plain character), then an optional CR."""
    d = re.escape(delimiter.encode("ascii"))
    field = rb'(?:"[^"]*(?:""[^"]*)*"|[^"' + d + rb"\r\n][^" + d + rb"\r\n]*|)"
    return re.compile(field + rb"(?:" + d + field + rb")*\r?")


def _bare_cr(data: bytes) -> bool:
    """`data` holds a CR that does not start a CRLF. A CR is looked for first: most files have none, and
    counting the two-byte CRLF is a slower search."""
    return b"\r" in data and data.count(b"\r") != data.count(b"\r\n")


def _line_feeds(data: bytes) -> int:
    """LF bytes in `data` (numpy counts a byte faster than bytes.count)."""
    return int(np.count_nonzero(np.frombuffer(data, dtype=np.uint8) == 0x0A))


def _single_line_records(path: Path, delimiter: str) -> int | None:
    """The file's number of lines when every record is one LF or CRLF line (every line holding a quote
    is a whole record: no quoted field opens on a line and closes on a later one), no CR-only line end
    and no NUL; None otherwise. Then pandas' C parser reads the file in chunks of lines, and a row's
    line number is its position; otherwise the csv module reads it, counting physical lines."""
    lines, last = 0, b"\n"
    complete_record = _complete_record(delimiter)
    with path.open("rb") as handle:
        while block := handle.read(SCAN_BLOCK_BYTES):
            # A CR-only line end is seen before reading on to the end of the line (a file of them has no LF
            # to stop at, and would be read whole); a CR ending the block may be a CRLF's.
            stem = block[:-1] if block.endswith(b"\r") else block
            if b"\x00" in block or _bare_cr(stem):
                return None
            line_end = handle.readline()  # whole lines only
            edge = block[-1:] + line_end  # what the block check left: the CR that may end the block, then its line
            if b"\x00" in line_end or _bare_cr(edge):
                return None
            block += line_end
            if b'"' in block and not all(complete_record.fullmatch(line) for line in block.split(b"\n")
                                         if b'"' in line):
                return None
            lines, last = lines + _line_feeds(block), block[-1:]
    return lines + (last != b"\n")  # a last line without a line break


@dataclass
class CsvLines:
    """Whole lines of a CSV whose records are single lines (its C parser path), as raw bytes: what a
    chunk costs to hand to a worker process, which parses it."""

    data: bytes
    first_line: int
    name: str
    header: list[str]
    delimiter: str
    encoding: str
    lang: str

    def parse(self) -> tuple[pd.DataFrame, np.ndarray]:
        """The non-blank rows and their line numbers. A shape pandas' C parser refuses (a header wider
        than every line) is read by the csv module instead."""
        codec, errors = text_codec(self.encoding)
        data, read_as = self.data, (codec, errors)
        if not codec.startswith("utf-8"):
            # pandas reads any other encoding through a slower text wrapper; Windows-1252 exports are common.
            data, read_as = data.decode(codec, errors).encode("utf-8"), ("utf-8", "strict")
        try:
            frame = pd.read_csv(
                io.BytesIO(data), sep=self.delimiter, header=None, names=self.header,
                usecols=range(len(self.header)), dtype=object, keep_default_na=False, na_filter=False,
                skip_blank_lines=False, encoding=read_as[0], encoding_errors=read_as[1], engine="c",
            )
        except pd.errors.EmptyDataError:  # blank lines only
            return pd.DataFrame(columns=self.header, dtype=object), np.array([], dtype=np.int64)
        except pd.errors.ParserError:
            return self._parse_with_csv_module(codec, errors)
        lines = np.arange(self.first_line, self.first_line + len(frame), dtype=np.int64)
        blank = _blank_rows(frame)
        if blank.any():
            frame, lines = frame.loc[~blank].reset_index(drop=True), lines[~blank]
        return frame, lines

    def _parse_with_csv_module(self, codec: str, errors: str) -> tuple[pd.DataFrame, np.ndarray]:
        text = io.StringIO(self.data.decode(codec, errors=errors), newline="")
        rows, line_numbers = [], []
        for start, record in _CsvRecords(text, self.name, self.delimiter, self.lang, skip_lines=self.first_line - 1):
            row = _table_row(record, len(self.header))
            if row is not None:
                rows.append(row)
                line_numbers.append(start)
        return _rows_frame(rows, self.header), np.asarray(line_numbers, dtype=np.int64)


def _line_blocks(path: Path, skip_lines: int, lines_per_block: int) -> Iterator[tuple[int, bytes]]:
    """(number of its first line, bytes) of successive blocks of `lines_per_block` whole lines (the last
    one fewer) after the first `skip_lines` lines."""
    with path.open("rb") as handle:
        for _ in range(skip_lines):
            handle.readline()
        line = skip_lines + 1
        while lines := list(itertools.islice(handle, lines_per_block)):
            yield line, b"".join(lines)
            line += lines_per_block


def _c_parser_chunks(info: TableInfo, max_rows: int, chunk_rows: int, line_count: int,
                     lang: str) -> Iterator[TableChunk]:
    """Chunks of raw lines, parsed where they are used. Only a file with more lines after its header
    than max_rows has its chunks parsed here, to count its rows (blank lines are not rows)."""
    count_rows = line_count - info.header_line > max_rows
    data_rows = 0
    for first_line, data in _line_blocks(info.path, info.header_line, chunk_rows):
        chunk = TableChunk(raw=CsvLines(data, first_line, info.path.name, info.header, info.delimiter,
                                        info.encoding, lang))
        if count_rows:
            data_rows += len(chunk.frame)
            if data_rows > max_rows:
                raise _too_many_rows(info.path, max_rows, lang)
        yield chunk


def _blank_rows(frame: pd.DataFrame) -> np.ndarray:
    """Rows whose every cell is empty or spaces (short rows are padded with empty cells)."""
    blank = np.ones(len(frame), dtype=bool)
    for column in frame.columns:
        candidates = np.flatnonzero(blank)
        if len(candidates) == 0:
            break
        cells = frame[column].to_numpy()[candidates]
        blank[candidates] = [not cell or cell.isspace() for cell in cells]
    return blank


# ---------------------------------------------------------------- spreadsheets


def _cell_text(value: object) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return None
        return str(int(value)) if value.is_integer() and abs(value) < 1e16 else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time(0) else value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    text = str(value)
    return None if text.startswith("#") and text.upper() in ("#N/A", "#VALUE!", "#REF!", "#DIV/0!", "#NAME?",
                                                             "#NUM!", "#NULL!") else text


def _sheet_row(cells: list[object], width: int) -> list[str | None] | None:
    """A sheet row as text cells of the table's width (short ones padded with None); None when blank."""
    values = [_cell_text(cell) for cell in cells[:width]]
    return values + [None] * (width - len(values)) if any(values) else None


class _Sheet:
    def __init__(self, name: str, rows: list[list[object]], merged: list) -> None:
        self.name, self.rows, self.merged = name, rows, merged


def _guard_xlsx_cells(path: Path, max_cells: int, lang: str) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            xml_bytes = sum(i.file_size for i in archive.infolist() if i.filename.startswith("xl/worksheets/"))
    except zipfile.BadZipFile:
        raise FileRejected("spreadsheet_damaged", lang, file=path.name) from None
    if xml_bytes / XML_BYTES_PER_CELL > max_cells:
        raise FileRejected("too_many_cells", lang, file=path.name, cells=xml_bytes // XML_BYTES_PER_CELL,
                           limit=max_cells)


def _read_calamine(path: Path, max_cells: int, lang: str) -> list[_Sheet]:
    from python_calamine import CalamineWorkbook

    # From a file object, calamine chooses its reader by content (from a path, by the extension).
    with path.open("rb") as handle:
        workbook = CalamineWorkbook.from_filelike(handle)
    sheets = []
    for name in workbook.sheet_names:
        sheet = workbook.get_sheet_by_name(name)
        if sheet.height * sheet.width > max_cells:
            raise FileRejected("sheet_too_many_cells", lang, file=path.name, sheet=name,
                               cells=sheet.height * sheet.width, limit=max_cells)
        merged = list(getattr(sheet, "merged_cell_ranges", None) or [])
        sheets.append(_Sheet(name, sheet.to_python(skip_empty_area=False), merged))
    return sheets


def _read_openpyxl(path: Path) -> list[_Sheet]:
    from openpyxl import load_workbook

    with path.open("rb") as handle:  # a file object: openpyxl checks a path's extension, not its content
        workbook = load_workbook(handle, read_only=True, data_only=True)
        try:
            return [_Sheet(ws.title, [list(r) for r in ws.iter_rows(values_only=True)], []) for ws in workbook]
        finally:
            workbook.close()


def _header_row(sheet: _Sheet, score_header: ScoreHeader) -> tuple[float, int, list[str]]:
    best = (0.0, -1, [])
    for index, row in enumerate(sheet.rows[:HEADER_SEARCH_ROWS]):
        cells = [_cell_text(c) or "" for c in row]
        cells = _fill_merged_header(sheet, index, cells)
        score = score_header(cells)
        if score > best[0]:
            best = (score, index, cells)
    return best


def _fill_merged_header(sheet: _Sheet, index: int, cells: list[str]) -> list[str]:
    """A header cell inside a merged range takes the text of the range (also from the row above)."""
    for (top, left), (bottom, right) in sheet.merged:
        if not top <= index <= bottom:
            continue
        text = _cell_text(sheet.rows[top][left]) if top < len(sheet.rows) else None
        for column in range(left, min(right + 1, len(cells))):
            if not cells[column] and text:
                cells[column] = text
    if index > 0:
        above = [_cell_text(c) or "" for c in sheet.rows[index - 1]]
        for column, cell in enumerate(cells):
            if not cell and column < len(above) and above[column]:
                cells[column] = above[column]
    return cells


def _open_spreadsheet(path: Path, file_format: str, score_header: ScoreHeader, max_rows: int, max_cells: int,
                      chunk_rows: int, lang: str) -> tuple[TableInfo, Iterator[TableChunk]]:
    if file_format == "xlsx":
        _guard_xlsx_cells(path, max_cells, lang)
    try:
        sheets = _read_calamine(path, max_cells, lang)
    except FileRejected:
        raise
    except Exception as calamine_error:  # noqa: BLE001 - any reader failure: try the fallback, then reject
        # The reader's own words, for whoever looks into the file; the person gets what to do.
        logger.info("%s: %s", path.name, calamine_error)
        if file_format != "xlsx":
            raise FileRejected("spreadsheet_unreadable", lang, file=path.name) from None
        try:
            sheets = _read_openpyxl(path)
        except Exception:  # noqa: BLE001
            raise FileRejected("spreadsheet_damaged", lang, file=path.name) from None
    candidates = [(_header_row(sheet, score_header), sheet) for sheet in sheets if sheet.rows]
    candidates = [c for c in candidates if c[0][1] >= 0]
    if not candidates:
        raise FileRejected("no_sheet_header", lang, file=path.name, rows=HEADER_SEARCH_ROWS,
                           sheets=", ".join(s.name for s in sheets) or "—")
    (_, header_index, header_cells), sheet = max(candidates, key=lambda c: c[0][0])
    header = _unique_header(header_cells)
    info = TableInfo(path, file_format, None, None, sheet.name, header, header_index + 1)

    width = len(header)
    rows = ((index + 1, _sheet_row(sheet.rows[index], width)) for index in range(header_index + 1, len(sheet.rows)))
    return info, _row_chunks(rows, path, header, max_rows, chunk_rows, lang)
