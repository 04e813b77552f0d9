"""The error report: the rejected rows with their original values plus `_ligne`, `_colonne`, `_erreur`.

CSV uploads get a CSV report (utf-8-sig, the upload's delimiter, formula cells neutralised by an
apostrophe), spreadsheets an XLSX report with typed cells: a value the upload held as a number or a
date is one again, `_ligne` is a whole number, text is text (no apostrophe). A report, corrected or
not, can be uploaded again as is: the report columns are ignored on import and a neutralising
apostrophe is removed.
"""

from __future__ import annotations

from pathlib import Path

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
