"""The error report: the rejected rows with their original values plus `_ligne`, `_colonne`, `_erreur`.

CSV uploads get a CSV report (utf-8-sig, the upload's delimiter, formula cells neutralised by an
apostrophe), spreadsheets an XLSX report with typed cells: a value the upload held as a number or a
date is one again, `_ligne` is a whole number, text is text (no apostrophe). A report, corrected or
not, can be uploaded again as is: the report columns are ignored on import and a neutralising
apostrophe is removed.
"""

from __future__ import annotations

import pickle
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pandas as pd

from nightshift.imports.writing import TableWriter, cell_from_text

REPORT_COLUMNS = ("_ligne", "_colonne", "_erreur")


class ErrorReport:
    def __init__(self, path: Path, header: list[str], delimiter: str | None) -> None:
        self.path = path
        self.header = [c for c in header if c not in REPORT_COLUMNS] + list(REPORT_COLUMNS)
        path.parent.mkdir(parents=True, exist_ok=True)
        file_format = "xlsx" if path.suffix == ".xlsx" else "csv"
        self._writer = TableWriter(path, file_format, self.header, delimiter=delimiter or ";", sheet="erreurs")

    def add(self, rows: pd.DataFrame) -> None:
        """`rows`: original columns (text cells as read) plus the three report columns, in file order."""
        if rows.empty:
            return
        frame = rows.reindex(columns=self.header).astype(object)
        records = frame.where(frame.notna(), None).itertuples(index=False, name=None)
        if self._writer.file_format == "xlsx":
            line = self.header.index("_ligne")
            records = ([int(value) if index == line else cell_from_text(value) if value.__class__ is str else value
                        for index, value in enumerate(record)] for record in records)
        self._writer.write(records)

    def close(self) -> None:
        self._writer.close()


class RejectedRows:
    """The raw rows of the lines validation rejects, kept as the one pass over the upload finds them (in file
    order) until the report is written: in a temporary file, so that memory holds one chunk's worth whatever
    the number of invalid rows. The file has no name on disk and goes when it is closed."""

    def __init__(self) -> None:
        self._spill: IO[bytes] | None = None

    def add(self, rows: pd.DataFrame | None) -> None:
        if rows is None or rows.empty:
            return
        if self._spill is None:
            self._spill = tempfile.TemporaryFile(prefix="nightshift-rejected-")
        pickle.dump(rows, self._spill, protocol=pickle.HIGHEST_PROTOCOL)

    def __iter__(self) -> Iterator[pd.DataFrame]:
        if self._spill is None:
            return
        self._spill.seek(0)
        while True:
            try:
                yield pickle.load(self._spill)  # noqa: S301 -- this run's own rows, written just above
            except EOFError:
                return

    def close(self) -> None:
        if self._spill is not None:
            self._spill.close()
            self._spill = None
