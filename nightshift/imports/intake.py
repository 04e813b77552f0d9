"""The upload folder: which files are ready, what they are, and their registration in the import log.

Used by the upload sensor (one scan per tick) and by `nightshift import PATH`. A file is ready when
its size and mtime did not change between two scans and its name is not a partial-download name.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from nightshift.config import Settings
from nightshift.db.engine import read_transaction, write_transaction
from nightshift.db.schema import accounts, imports
from nightshift.imports.files import is_partial_name, move_without_overwrite, partition_key, sha256_of
from nightshift.imports.profiles import Profile, profile_for_folder

AUTO_PROFILE = "auto"


@dataclass(frozen=True)
class Upload:
    path: Path
    profile: Profile | None
    account_slug: str | None


@dataclass(frozen=True)
class Registered:
    import_id: int
    partition_key: str
    run_key: str
    path: Path


@dataclass(frozen=True)
class Recorded:
    """A file logged without an import run: a `duplicate`, or `failed` before it could start."""

    import_id: int
    status: str


@dataclass
class ScanResult:
    registered: list[Registered] = field(default_factory=list)
    duplicates: list[int] = field(default_factory=list)
    rejected: list[int] = field(default_factory=list)
    # Not yet stable, or left for the next tick (time budget): relpath -> [size, mtime_ns].
    waiting: dict[str, list[int]] = field(default_factory=dict)
    deferred: int = 0


def classify(path: Path, uploads_dir: Path) -> Upload:
    """Profile and account from the sub-folders: uploads/<profile>/f or uploads/<account>/<profile>/f."""
    parts = path.relative_to(uploads_dir).parts[:-1]
    profile, account = None, None
    if parts:
        profile = profile_for_folder(parts[-1])
        if profile is not None and len(parts) >= 2:
            account = parts[-2]
        elif profile is None:
            account = parts[-1]
    return Upload(path, profile, account)


def run_key(sha256: str, profile: Profile | None) -> str:
    """Same bytes for the same profile version = same run key = one import."""
    return f"{sha256}:{profile.name}:{profile.version}" if profile else f"{sha256}:{AUTO_PROFILE}"


def _in_flight_paths(engine: Engine, uploads_dir: Path) -> set[str]:
    """Files already registered and still in the upload folder (handled files are moved out; a file
    whose import failed for a transient reason stays for its automatic retry). Only paths under the
    upload folder are loaded: the failed imports of the past live in failed/."""
    prefix = str(uploads_dir).rstrip(os.sep) + os.sep
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    query = sa.select(imports.c.file_path).where(imports.c.status.in_(("received", "running", "failed")),
                                                 imports.c.file_path.like(escaped + "%", escape="\\"))
    with read_transaction(engine) as conn:
        return {row[0] for row in conn.execute(query)}


def _first_imports(conn, shas: list[str]) -> dict[tuple[str, str | None, str | None], dict]:
    """Earliest non-duplicate import per (sha256, profile, profile_version) among the given hashes."""
    found: dict[tuple[str, str | None, str | None], dict] = {}
    for start in range(0, len(shas), 500):
        query = (sa.select(imports).where(imports.c.sha256.in_(shas[start:start + 500]),
                                          imports.c.status != "duplicate", imports.c.dry_run.is_(False))
                 .order_by(imports.c.id))
        for row in conn.execute(query).mappings():
            found.setdefault((row["sha256"], row["profile"], row["profile_version"]), dict(row))
            found.setdefault((row["sha256"], None, None), dict(row))
    return found


def register_many(engine: Engine, uploads: list[tuple[Upload, str]], settings: Settings, *,
                  detect_duplicates: bool = True, account_id: int | None = None) -> list[Registered | Recorded]:
    """Record received files in one transaction. For each: its registration, or the id of the
    `duplicate` / `failed` (unknown account) log entry written instead; those files are moved out."""
    day = datetime.now(settings.tz).date()
    now = datetime.now(UTC)
    outcomes: list[Registered | Recorded] = []
    with write_transaction(engine) as conn:
        first = _first_imports(conn, sorted({sha for _, sha in uploads})) if detect_duplicates else {}
        slugs = sorted({u.account_slug for u, _ in uploads if u.account_slug and account_id is None})
        account_ids = dict(conn.execute(sa.select(accounts.c.slug, accounts.c.id)
                                        .where(accounts.c.slug.in_(slugs))).all()) if slugs else {}
        for upload, sha in uploads:
            size = upload.path.stat().st_size
            profile = upload.profile
            earlier = first.get((sha, profile.name, profile.version) if profile else (sha, None, None))
            values = dict(file_name=upload.path.name, sha256=sha, size_bytes=size, created_at=now,
                          profile=profile.name if profile else None,
                          profile_version=profile.version if profile else None,
                          partition_key=partition_key(upload.path.name, sha))
            if earlier is not None:
                moved = move_without_overwrite(upload.path, settings.processed_dir, day)
                duplicate_id = _insert(conn, values, status="duplicate", stage="done", file_path=str(moved),
                                       duplicate_of_id=earlier["id"], account_id=earlier["account_id"],
                                       finished_at=now, message=f"same content as import {earlier['id']} "
                                       f"({earlier['file_name']}, {earlier['status']})")
                outcomes.append(Recorded(duplicate_id, "duplicate"))
                continue
            owner = account_id if account_id is not None else account_ids.get(upload.account_slug)
            if upload.account_slug and owner is None:
                moved = move_without_overwrite(upload.path, settings.failed_dir, day)
                failed_id = _insert(conn, values, status="failed", stage="received", file_path=str(moved),
                                    failure_kind="bad_input", finished_at=now,
                                    message=f"unknown account folder {upload.account_slug!r}: create the "
                                    "account or move the file to uploads/<profile>/")
                outcomes.append(Recorded(failed_id, "failed"))
                continue
            import_id = _insert(conn, values, status="received", stage="received", file_path=str(upload.path),
                                account_id=owner)
            outcomes.append(Registered(import_id, values["partition_key"], run_key(sha, profile), upload.path))
            # Same bytes twice in one batch: the second is a duplicate of the first.
            first.setdefault((sha, values["profile"], values["profile_version"]),
                             {"id": import_id, "account_id": owner, "file_name": upload.path.name,
                              "status": "received"})
            first.setdefault((sha, None, None), first[(sha, values["profile"], values["profile_version"])])
    return outcomes


def _insert(conn, values: dict, **more) -> int:
    return conn.execute(imports.insert().values(**values, **more)).inserted_primary_key[0]


def register(engine: Engine, upload: Upload, settings: Settings, *, detect_duplicates: bool = True,
             account_id: int | None = None) -> Registered | Recorded:
    """One file (`nightshift import` passes detect_duplicates=False: an explicit import always runs)."""
    [outcome] = register_many(engine, [(upload, sha256_of(upload.path))], settings,
                              detect_duplicates=detect_duplicates, account_id=account_id)
    return outcome


def scan(engine: Engine, settings: Settings, previous: dict[str, list[int]], *,
         time_budget_s: float = 40.0) -> ScanResult:
    """One pass over the upload folder (the sensor's tick): stable files are hashed and registered."""
    started = time.monotonic()
    uploads_dir = settings.uploads_dir
    result = ScanResult()
    if not uploads_dir.is_dir():
        return result
    in_flight = _in_flight_paths(engine, settings.uploads_dir)
    ready: list[tuple[Upload, str]] = []
    for directory, subdirs, files in os.walk(uploads_dir):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        for name in sorted(files):
            path = Path(directory) / name
            if is_partial_name(name) or str(path) in in_flight:
                continue
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            relative = str(path.relative_to(uploads_dir))
            signature = [stat.st_size, stat.st_mtime_ns]
            if previous.get(relative) != signature or time.monotonic() - started > time_budget_s:
                result.deferred += previous.get(relative) == signature
                result.waiting[relative] = signature
                continue
            ready.append((classify(path, uploads_dir), sha256_of(path)))
    for outcome in register_many(engine, ready, settings):
        if isinstance(outcome, Registered):
            result.registered.append(outcome)
        elif outcome.status == "duplicate":
            result.duplicates.append(outcome.import_id)
        else:
            result.rejected.append(outcome.import_id)
    return result
