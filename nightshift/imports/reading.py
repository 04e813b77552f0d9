"""Reading uploaded tables (CSV, XLSX, XLS, ODS) as raw text cells, in chunks, with file line numbers.

CSV: encoding by BOM → strict UTF-8 → cp1252 (not latin-1: € ’ œ live in 0x80–0x9F); delimiter among
`; , tab |` chosen by consistent field counts and by the header matching the profile (not
csv.Sniffer). Spreadsheets: python-calamine (openpyxl read-only as fallback for .xlsx); the sheet and
header row (first 30 rows) that best match the profile. No type conversion happens here.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import math
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path

import numpy as np
import pandas as pd

HEADER_SEARCH_ROWS = 30
SAMPLE_RECORDS = 50
SAMPLE_BYTES = 256 * 1024
SCAN_BLOCK_BYTES = 4 * 1024 * 1024
DELIMITERS = (";", ",", "\t", "|")
# Bytes a cp1252 file cannot contain (undefined code points).
CP1252_UNDEFINED = b"\x81\x8d\x8f\x90\x9d"
ZIP_MAGIC, OLE_MAGIC = b"PK\x03\x04", b"\xd0\xcf\x11\xe0"
# Estimated bytes of sheet XML per cell, for the memory guard before a sheet is materialised.
XML_BYTES_PER_CELL = 20

csv.field_size_limit(2**31 - 1)

ScoreHeader = Callable[[list[str]], float]


class FileRejected(Exception):
    """The whole file cannot be read. `code` is stable; the message says what to do."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class TableChunk:
    frame: pd.DataFrame  # columns = header as written (deduplicated); raw str cells, "" or NA when empty
    lines: np.ndarray  # 1-based line (CSV) or row (spreadsheet) of each row


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


def _detect_format(path: Path, head: bytes) -> str:
    if head.startswith(ZIP_MAGIC):
        suffix = path.suffix.lower()
        return "ods" if suffix == ".ods" else "xlsx"
    if head.startswith(OLE_MAGIC):
        return "xls"
    if path.suffix.lower() in (".xlsx", ".xlsm", ".xls", ".ods"):
        raise FileRejected("truncated_xlsx" if path.suffix.lower() != ".xls" else "unreadable",
                           f"{path.name}: not a readable spreadsheet (damaged or not really "
                           f"{path.suffix.lower()}): export it again from the spreadsheet program")
    return "csv"


def open_table(path: Path, *, score_header: ScoreHeader, max_bytes: int, max_rows: int,
               max_cells: int = 30_000_000, chunk_rows: int = 25_000) -> tuple[TableInfo, Iterator[TableChunk]]:
    path = Path(path)
    size = path.stat().st_size
    if size > max_bytes:
        raise FileRejected("too_large", f"{path.name}: {size:,} bytes is over the limit of {max_bytes:,} bytes "
                                        "(setting imports.max_bytes); split the file or raise the limit")
    if size == 0:
        raise FileRejected("empty_file", f"{path.name}: the file is empty")
    with path.open("rb") as handle:
        head = handle.read(SAMPLE_BYTES)
    file_format = _detect_format(path, head)
    if file_format == "csv":
        return _open_csv(path, head, score_header, max_rows, chunk_rows)
    return _open_spreadsheet(path, file_format, score_header, max_rows, max_cells, chunk_rows)


# ---------------------------------------------------------------- CSV


def _detect_encoding(path: Path, head: bytes) -> str:
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    sample = head.replace(b"\x00", b"")
    controls = sum(1 for b in sample[:65536] if b < 32 and b not in (9, 10, 13))
    nuls = head[:65536].count(b"\x00")
    if nuls > max(16, len(head[:65536]) * 0.01) or controls > max(16, len(sample[:65536]) * 0.05):
        raise FileRejected("not_tabular", f"{path.name}: this is not a text table (binary content); "
                                          "upload a CSV or an Excel file")
    for encoding in ("utf-8", "cp1252"):
        decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
        try:
            with path.open("rb") as handle:
                while block := handle.read(1024 * 1024):
                    decoder.decode(block)
                decoder.decode(b"", final=True)
            return encoding
        except UnicodeDecodeError:
            continue
    raise FileRejected("unreadable", f"{path.name}: the text encoding is neither UTF-8 nor Windows-1252; "
                                     "save the file as CSV UTF-8")


class _NulStripper:
    """Line iterator that drops stray NUL bytes (csv cannot parse them) and counts them."""

    def __init__(self, lines: Iterable[str]) -> None:
        self.lines = iter(lines)
        self.removed = 0

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        line = next(self.lines)
        if "\x00" in line:
            self.removed += line.count("\x00")
            line = line.replace("\x00", "")
        return line


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


def _choose_delimiter(text: str, score_header: ScoreHeader) -> tuple[str, int]:
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
        raise FileRejected("no_header", "no header line found")
    return best[1], best[2]


def _open_csv(path: Path, head: bytes, score_header: ScoreHeader, max_rows: int,
              chunk_rows: int) -> tuple[TableInfo, Iterator[TableChunk]]:
    encoding = _detect_encoding(path, head)
    sample_text = head.decode(encoding, errors="ignore").replace("\x00", "")
    if not sample_text.strip():
        raise FileRejected("empty_file", f"{path.name}: the file holds no text")
    delimiter, header_index = _choose_delimiter(sample_text, score_header)

    handle = path.open("r", encoding=encoding, newline="")
    lines = _NulStripper(handle)
    reader = csv.reader(lines, delimiter=delimiter)
    header_record, header_line, previous_end, non_blank = None, 0, 0, -1
    try:
        for record in reader:
            start, previous_end = previous_end + 1, reader.line_num
            if any(cell.strip() for cell in record):
                non_blank += 1
                if non_blank == header_index:
                    header_record, header_line = record, start
                    break
    except csv.Error as exc:
        handle.close()
        raise FileRejected("unreadable",
                           f"{path.name}: CSV structure error near line {reader.line_num}: {exc}") from None
    if header_record is None:
        handle.close()
        raise FileRejected("no_header", f"{path.name}: no header line found")
    header = _unique_header(header_record)
    info = TableInfo(path, "csv", encoding, delimiter, None, header, header_line)
    if encoding != "utf-16" and _one_record_per_line(path):
        handle.close()
        return info, _c_parser_chunks(info, max_rows, chunk_rows)

    def chunks() -> Iterator[TableChunk]:
        nonlocal previous_end
        width = len(header)
        rows: list[list[str]] = []
        line_numbers: list[int] = []
        data_rows = 0
        try:
            while True:
                try:
                    record = next(reader)
                except StopIteration:
                    break
                except csv.Error as exc:
                    raise FileRejected("unreadable",
                                       f"{path.name}: CSV structure error near line {reader.line_num}: {exc}") from None
                start, previous_end = previous_end + 1, reader.line_num
                if not "".join(record).strip():
                    continue
                data_rows += 1
                if data_rows > max_rows:
                    raise FileRejected("too_many_rows", f"{path.name}: more than {max_rows:,} data rows "
                                                        "(setting imports.max_rows); split the file")
                if len(record) != width:
                    record = (record + [""] * width)[:width]
                rows.append(record)
                line_numbers.append(start)
                if len(rows) >= chunk_rows:
                    yield _chunk(rows, line_numbers, header)
                    rows, line_numbers = [], []
            if rows:
                yield _chunk(rows, line_numbers, header)
            info.nul_bytes_removed = lines.removed
        finally:
            handle.close()

    return info, chunks()


def _one_record_per_line(path: Path) -> bool:
    """True when every record is one LF or CRLF line: no quoted line break (a line with an odd number
    of quotes), no CR-only line end, no NUL. pandas' C parser then reads the file, and a row's line
    number is its position; otherwise the csv module does, counting physical lines."""
    with path.open("rb") as handle:
        while block := handle.read(SCAN_BLOCK_BYTES):
            block += handle.readline()  # whole lines only
            if b"\x00" in block or block.count(b"\r") != block.count(b"\r\n"):
                return False
            if b'"' in block and any(line.count(b'"') % 2 for line in block.split(b"\n")):
                return False
    return True


def _c_parser_chunks(info: TableInfo, max_rows: int, chunk_rows: int) -> Iterator[TableChunk]:
    width = len(info.header)
    reader = pd.read_csv(
        info.path, sep=info.delimiter, header=None, names=info.header, usecols=range(width),
        skiprows=info.header_line, dtype=object, keep_default_na=False, na_filter=False,
        skip_blank_lines=False, encoding=info.encoding, chunksize=chunk_rows, engine="c",
    )
    first_line, data_rows = info.header_line + 1, 0
    with reader:
        for frame in reader:
            lines = np.arange(first_line, first_line + len(frame), dtype=np.int64)
            first_line += len(frame)
            blank = _blank_rows(frame)
            if blank.any():
                frame, lines = frame.loc[~blank], lines[~blank]
            data_rows += len(frame)
            if data_rows > max_rows:
                raise FileRejected("too_many_rows", f"{info.path.name}: more than {max_rows:,} data rows "
                                                    "(setting imports.max_rows); split the file")
            if len(frame):
                yield TableChunk(frame.reset_index(drop=True), lines)


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


def _chunk(rows: list[list[object]], line_numbers: list[int], header: list[str]) -> TableChunk:
    return TableChunk(pd.DataFrame(rows, columns=header, dtype=object), np.asarray(line_numbers, dtype=np.int64))


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


class _Sheet:
    def __init__(self, name: str, rows: list[list[object]], merged: list) -> None:
        self.name, self.rows, self.merged = name, rows, merged


def _guard_xlsx_cells(path: Path, max_cells: int) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            xml_bytes = sum(i.file_size for i in archive.infolist() if i.filename.startswith("xl/worksheets/"))
    except zipfile.BadZipFile:
        raise FileRejected("truncated_xlsx", f"{path.name}: the spreadsheet is damaged or truncated; "
                                             "export it again") from None
    if xml_bytes / XML_BYTES_PER_CELL > max_cells:
        raise FileRejected("too_large", f"{path.name}: about {xml_bytes // XML_BYTES_PER_CELL:,} cells, over the "
                                        f"limit of {max_cells:,} (setting imports.max_cells); save it as CSV")


def _read_calamine(path: Path, max_cells: int) -> list[_Sheet]:
    from python_calamine import CalamineWorkbook

    workbook = CalamineWorkbook.from_path(str(path))
    sheets = []
    for name in workbook.sheet_names:
        sheet = workbook.get_sheet_by_name(name)
        if sheet.height * sheet.width > max_cells:
            raise FileRejected("too_large", f"{path.name}: sheet {name!r} has {sheet.height * sheet.width:,} "
                                            f"cells, over the limit of {max_cells:,} (setting imports.max_cells)")
        merged = list(getattr(sheet, "merged_cell_ranges", None) or [])
        sheets.append(_Sheet(name, sheet.to_python(skip_empty_area=False), merged))
    return sheets


def _read_openpyxl(path: Path) -> list[_Sheet]:
    from openpyxl import load_workbook

    workbook = load_workbook(path, read_only=True, data_only=True)
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
                      chunk_rows: int) -> tuple[TableInfo, Iterator[TableChunk]]:
    if file_format == "xlsx":
        _guard_xlsx_cells(path, max_cells)
    try:
        sheets = _read_calamine(path, max_cells)
    except FileRejected:
        raise
    except Exception as calamine_error:  # noqa: BLE001 - any reader failure: try the fallback, then reject
        if file_format != "xlsx":
            raise FileRejected("unreadable", f"{path.name}: the spreadsheet cannot be read ({calamine_error}); "
                                             "export it again or save it as CSV") from None
        try:
            sheets = _read_openpyxl(path)
        except Exception:  # noqa: BLE001
            raise FileRejected("truncated_xlsx", f"{path.name}: the spreadsheet is damaged or truncated "
                                                 f"({calamine_error}); export it again") from None
    candidates = [(_header_row(sheet, score_header), sheet) for sheet in sheets if sheet.rows]
    candidates = [c for c in candidates if c[0][1] >= 0]
    if not candidates:
        names = ", ".join(s.name for s in sheets) or "none"
        raise FileRejected("no_header", f"{path.name}: no sheet has a recognised header row in its first "
                                        f"{HEADER_SEARCH_ROWS} rows (sheets: {names})")
    (_, header_index, header_cells), sheet = max(candidates, key=lambda c: c[0][0])
    header = _unique_header(header_cells)
    info = TableInfo(path, file_format, None, None, sheet.name, header, header_index + 1)

    def chunks() -> Iterator[TableChunk]:
        width = len(header)
        rows: list[list[object]] = []
        line_numbers: list[int] = []
        data_rows = 0
        for index in range(header_index + 1, len(sheet.rows)):
            values = [_cell_text(c) for c in sheet.rows[index][:width]]
            if not any(values):
                continue
            data_rows += 1
            if data_rows > max_rows:
                raise FileRejected("too_many_rows", f"{path.name}: more than {max_rows:,} data rows "
                                                    "(setting imports.max_rows); split the file")
            rows.append(values + [None] * (width - len(values)))
            line_numbers.append(index + 1)
            if len(rows) >= chunk_rows:
                yield _chunk(rows, line_numbers, header)
                rows, line_numbers = [], []
        if rows:
            yield _chunk(rows, line_numbers, header)

    return info, chunks()
