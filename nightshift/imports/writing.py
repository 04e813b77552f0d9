"""Writing tables the importer reads back as they are: error reports, exports and templates.

CSV: utf-8-sig (Excel opens it in UTF-8), the given delimiter, every text starting with = + - @ tab or CR
prefixed with an apostrophe (OWASP CSV injection), which the importer removes again (values.clean_text).
XLSX: typed cells (numbers, dates, booleans, text) and no apostrophes: a text cell is never run, so only a
text openpyxl would take for a formula (starting with "=") is marked as text.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Sequence
from datetime import datetime, time
from pathlib import Path
from typing import TextIO

import pandas as pd
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.utils.exceptions import IllegalCharacterError

from nightshift.imports.values import neutralize_formula

FORMATS = ("csv", "xlsx")


class UnwritableCell(Exception):
    """A text XLSX cannot hold (a control character other than tab, CR and LF): where it is in the file."""

    def __init__(self, line: int, column: str) -> None:
        super().__init__(f"line {line}, column {column}: a control character XLSX cannot hold")
        self.line, self.column = line, column


def exact_in_xlsx(number: float) -> bool:
    """openpyxl writes a float with 16 significant digits: the few that need 17 would come back changed."""
    return float(f"{number:.16g}") == number


class TableWriter:
    """One table, written row by row to `target` (a path, or for CSV an open text stream)."""

    def __init__(self, target: Path | TextIO, file_format: str, header: Sequence[str], *, delimiter: str = ";",
                 sheet: str = "Feuil1") -> None:
        if file_format not in FORMATS:
            raise ValueError(f"unknown table format {file_format!r}")
        self.file_format, self.rows, self.header = file_format, 0, list(header)
        self._path: Path | None = None
        self._handle: TextIO | None = None
        if file_format == "xlsx":
            self._path = Path(target)
            self._workbook = Workbook(write_only=True)
            self._sheet = self._workbook.create_sheet(sheet)
            self._sheet.append(list(header))
            return
        if isinstance(target, Path):
            self._handle = target.open("w", encoding="utf-8-sig", newline="")
            stream: TextIO = self._handle
        else:
            stream = target
        self._csv = csv.writer(stream, delimiter=delimiter)
        self._csv.writerow(header)

    def write(self, rows: Iterable[Sequence[object]]) -> None:
        """CSV rows hold text or None; XLSX rows hold text, int, float, date, datetime, bool or None."""
        if self.file_format == "xlsx":
            for row in rows:
                try:
                    self._sheet.append([self._xlsx_cell(value) for value in row])
                except IllegalCharacterError:
                    raise self._unwritable(row) from None
                self.rows += 1
            return
        rows = list(rows)
        if not rows:
            return
        frame = pd.DataFrame(rows, dtype=object)
        safe = frame.apply(lambda column: neutralize_formula(column))
        self._csv.writerows(["" if value is None else value for value in row]
                            for row in safe.itertuples(index=False, name=None))
        self.rows += len(rows)

    def _unwritable(self, row: Sequence[object]) -> UnwritableCell:
        column = next(name for name, value in zip(self.header, row, strict=True)
                      if value.__class__ is str and ILLEGAL_CHARACTERS_RE.search(value))
        return UnwritableCell(self.rows + 2, column)  # the header is line 1

    def _xlsx_cell(self, value: object) -> object:
        if value.__class__ is str and value.startswith("="):
            cell = WriteOnlyCell(self._sheet, value=value)
            cell.data_type = "s"
            return cell
        return value

    def close(self) -> None:
        if self.file_format == "xlsx":
            self._workbook.save(self._path)
        elif self._handle is not None:
            self._handle.close()


_INTEGER = re.compile(r"-?[0-9]+")
_NUMBER_START = re.compile(r"-?[0-9]")


def cell_from_text(text: str) -> object:
    """A text cell as the typed XLSX cell it was read from: the number, date or date and time whose text
    (reading._cell_text) it is exactly; any other text as it is. Reading the cell again gives the same
    text: "0612345678", "1,5", "73282932000074" or "2024-1-5" stay text."""
    if _INTEGER.fullmatch(text):
        number = int(text)
        # Longer numbers (a SIRET) would show as 7.32829E+13 in Excel's General format: they stay text.
        return number if str(number) == text and abs(number) < 10**11 else text
    if not _NUMBER_START.match(text):
        return text
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        return number if repr(number) == text and exact_in_xlsx(number) else text
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return text
    if moment.date().isoformat() == text:
        return moment.date()
    # A time of day to the second: the reader gives midnight as the date alone.
    whole_seconds = moment.time() != time(0) and moment.microsecond == 0 and moment.tzinfo is None
    return moment if whole_seconds and moment.isoformat(sep=" ") == text else text
