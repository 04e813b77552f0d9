"""The error report: the rejected rows with their original values plus `_ligne`, `_colonne`, `_erreur`.

CSV uploads get a CSV report (utf-8-sig, the upload's delimiter), spreadsheets an XLSX report. Cells
are neutralised against formula injection. A corrected report can be uploaded again as is: the
report columns are ignored on import and the neutralising apostrophe is removed.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
from openpyxl import Workbook

from nightshift.imports.values import neutralize_formula

REPORT_COLUMNS = ("_ligne", "_colonne", "_erreur")


class ErrorReport:
    def __init__(self, path: Path, header: list[str], delimiter: str | None) -> None:
        self.path = path
        self.header = [c for c in header if c not in REPORT_COLUMNS] + list(REPORT_COLUMNS)
        self.rows = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".xlsx":
            self._workbook = Workbook(write_only=True)
            self._sheet = self._workbook.create_sheet("erreurs")
            self._sheet.append(self.header)
            self._handle = None
        else:
            self._workbook = None
            self._handle = path.open("w", encoding="utf-8-sig", newline="")
            self._writer = csv.writer(self._handle, delimiter=delimiter or ";")
            self._writer.writerow(self.header)

    def add(self, rows: pd.DataFrame) -> None:
        """`rows`: original columns plus the three report columns, in file order."""
        if rows.empty:
            return
        frame = rows.reindex(columns=self.header)
        safe = frame.apply(lambda col: neutralize_formula(col.astype(object)))
        records = safe.astype(object).where(safe.notna(), None).itertuples(index=False, name=None)
        if self._workbook is not None:
            for record in records:
                self._sheet.append(list(record))
        else:
            self._writer.writerows(["" if v is None else v for v in record] for record in records)
        self.rows += len(frame)

    def close(self) -> None:
        if self._workbook is not None:
            self._workbook.save(self.path)
        elif self._handle is not None:
            self._handle.close()

    def discard(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)
