"""The import_files policy: files of data/processed, data/failed and data/reports past their age.

Only regular files found under those folders inside the data folder are candidates: symlinks are never
followed nor deleted, a folder that is a symlink is not entered, and a path that resolves outside the
data folder is left alone. A file an import still points to (file_path or error_report_path) is kept
while that import is unfinished or younger than the policy's age. Folders left empty are removed.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from nightshift.db.engine import read_transaction
from nightshift.db.schema import IMPORT_IN_PROGRESS, imports
from nightshift.retention.policies import FILE_FOLDERS, Policy
from nightshift.retention.run import PolicyReport, Run


@dataclass(frozen=True)
class DataFile:
    path: Path
    size: int
    modified: datetime


def _inside(path: Path, root: Path) -> bool:
    return path.resolve().is_relative_to(root)


def data_files(data_dir: Path) -> Iterator[DataFile]:
    """Every regular file under the policy's folders, without following a symlink."""
    root = data_dir.resolve()
    for name in FILE_FOLDERS:
        folder = data_dir / name
        if folder.is_symlink() or not folder.is_dir() or not _inside(folder, root):
            continue
        for current, _dirs, names in os.walk(folder, followlinks=False):
            for file_name in names:
                path = Path(current) / file_name
                info = path.lstat()
                if stat.S_ISREG(info.st_mode) and _inside(path, root):
                    yield DataFile(path, info.st_size, datetime.fromtimestamp(info.st_mtime, UTC))


def kept_in(data_dir: Path, paths: Iterable[str | None]) -> bool:
    """Whether one of `paths` is a file that still exists in the data folder."""
    root = data_dir.resolve()
    return any(p is not None and Path(p).is_file() and _inside(Path(p), root) for p in paths)


def _pointed_to(engine: Engine, cutoff: datetime) -> set[Path]:
    needed = sa.or_(imports.c.status.in_(IMPORT_IN_PROGRESS), imports.c.created_at >= cutoff,
                    imports.c.finished_at >= cutoff)
    with read_transaction(engine) as conn:
        rows = conn.execute(sa.select(imports.c.file_path, imports.c.error_report_path).where(needed)).all()
    return {Path(p).resolve() for row in rows for p in row if p is not None}


def run_file_policy(engine: Engine, policy: Policy, batch_size: int, run: Run) -> PolicyReport:
    cutoff = run.now - policy.max_age
    report = PolicyReport(policy.name, bytes=0)
    protected = _pointed_to(engine, cutoff)
    expired = [f for f in data_files(run.data_dir) if f.modified < cutoff and f.path.resolve() not in protected]
    if run.dry_run:
        report.would_delete, report.bytes = len(expired), sum(f.size for f in expired)
    else:
        for start in range(0, len(expired), batch_size):
            if run.should_stop():
                report.stopped = True
                break
            batch = expired[start:start + batch_size]
            for data_file in batch:
                data_file.path.unlink(missing_ok=True)
                report.bytes += data_file.size
            report.deleted += len(batch)
            report.batches += 1
            run.progress(policy.name, report.batches, len(batch), report.deleted)
        _remove_empty_folders(run.data_dir)
        report.would_delete = len(expired) - report.deleted
    left = list(data_files(run.data_dir))
    report.remaining = len(left)
    if left:
        report.oldest_remaining_age_s = round((run.now - min(f.modified for f in left)).total_seconds(), 3)
    return report


def _remove_empty_folders(data_dir: Path) -> None:
    for name in FILE_FOLDERS:
        folder = data_dir / name
        if folder.is_symlink() or not folder.is_dir():
            continue
        for current, _dirs, _names in os.walk(folder, topdown=False, followlinks=False):
            path = Path(current)
            if path != folder and not path.is_symlink() and not any(path.iterdir()):
                path.rmdir()
