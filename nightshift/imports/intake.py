"""The upload folder: which files are ready, what they are, and their registration in the import log.

Used by the upload sensor (one scan per tick) and by `nightshift import PATH`. A file is ready when
its name is not a partial-download name and its size and mtime did not change for
imports.settle_seconds within one scan, or between two scans.
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
from nightshift.db.schema import IMPORT_ENDED_WITHOUT_ROWS, IMPORT_IN_PROGRESS, accounts, imports
from nightshift.imports.files import is_partial_name, move_without_overwrite, partition_key, sha256_of
from nightshift.imports.messages import message
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


def run_key(sha256: str, profile: Profile | None, import_id: int | None = None) -> str:
    """Same bytes for the same profile version = same run key = one import. With `import_id`: the run key
    of a re-registration of bytes whose earlier import was set aside (see register_many), which Dagster
    must not skip as already used."""
    key = f"{sha256}:{profile.name}:{profile.version}" if profile else f"{sha256}:{AUTO_PROFILE}"
    return f"{key}:{import_id}" if import_id is not None else key


def _in_flight_paths(engine: Engine, uploads_dir: Path) -> set[str]:
    """Files already registered and still in the upload folder (handled files are moved out; a file
    whose import failed for a transient reason or was interrupted stays for its automatic retry; one merged
    but not moved, the folder it should go to being unusable, stays too). Only paths under the upload
    folder are loaded: the failed imports of the past live in failed/."""
    prefix = str(uploads_dir).rstrip(os.sep) + os.sep
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    registered = sa.or_(imports.c.status.in_((*IMPORT_IN_PROGRESS, *IMPORT_ENDED_WITHOUT_ROWS)),
                        imports.c.stage == "merged")
    query = sa.select(imports.c.file_path).where(registered, imports.c.file_path.like(escaped + "%", escape="\\"))
    with read_transaction(engine) as conn:
        return {row[0] for row in conn.execute(query)}


def _rejected_at_intake(row: dict) -> bool:
    """Failed when it was received (unknown account folder): it never had a run request nor a run."""
    return row["status"] == "failed" and row["dagster_run_id"] is None and row["failure_kind"] == "bad_input"


def _counts_as_first(row: dict) -> bool:
    """Whether an earlier import of the same bytes makes a new upload of them a `duplicate` (the rule is in
    register_many's docstring)."""
    if _rejected_at_intake(row):
        return False
    if row["status"] in ("received", *IMPORT_ENDED_WITHOUT_ROWS):
        kept = row["file_path"]
        return bool(kept) and Path(kept).exists()  # else nothing is left to run or re-execute
    return True


def _first_imports(conn, shas: list[str]) -> tuple[dict[tuple[str, str | None, str | None], dict], set[str]]:
    """Among the given hashes: the earliest import that counts as the first one per (sha256, profile,
    profile_version) and per sha256 alone (key (sha256, None, None)); and the hashes with an earlier import
    set aside after it was registered for a run (its content run key may have been used)."""
    found: dict[tuple[str, str | None, str | None], dict] = {}
    run_key_used: set[str] = set()
    for start in range(0, len(shas), 500):
        query = (sa.select(imports).where(imports.c.sha256.in_(shas[start:start + 500]),
                                          imports.c.status != "duplicate", imports.c.dry_run.is_(False))
                 .order_by(imports.c.id))
        for row in conn.execute(query).mappings():
            if not _counts_as_first(row):
                if not _rejected_at_intake(row):
                    run_key_used.add(row["sha256"])
                continue
            found.setdefault((row["sha256"], row["profile"], row["profile_version"]), dict(row))
            found.setdefault((row["sha256"], None, None), dict(row))
    return found, run_key_used


def _duplicate_message(earlier: dict, lang: str) -> str:
    code = "duplicate_of"
    if earlier["status"] in IMPORT_ENDED_WITHOUT_ROWS and earlier.get("partition_key"):
        code = "duplicate_of_bad_input" if earlier.get("failure_kind") == "bad_input" else "duplicate_of_failed"
    return message(code, lang, import_id=earlier["id"], file=earlier["file_name"], status=earlier["status"],
                   partition=earlier.get("partition_key"))


def register_many(engine: Engine, uploads: list[tuple[Upload, str]], settings: Settings, *,
                  detect_duplicates: bool = True, account_id: int | None = None) -> list[Registered | Recorded]:
    """Record received files in one transaction. For each: its registration, or the id of the
    `duplicate` / `failed` (unknown account folder) log entry written instead; those files are moved out.

    Duplicates: an upload is a `duplicate` of the earliest earlier import of the same bytes (same profile
    version when the folder names the profile; any profile when it is detected from the headers), one
    registered earlier in the same batch included, that can still import them or already did:
    - succeeded, partial, running: the content is (being) imported;
    - received, or failed in its run, while its file is kept: it runs, is retried automatically once when
      the failure was transient, or waits for a manual re-execution of its partition (same bytes fail the
      same way; the duplicate's message names the partition);
    not one rejected at intake (unknown account folder: it never ran, and its message asks for exactly
    this re-upload), nor a received/failed one whose file is gone (its run can only tell the user to
    upload the file again).
    Run keys: the content run key (`run_key`) when these bytes were never registered for a run before;
    otherwise it is suffixed with the new import id, since Dagster skips a run key already used by the
    sensor and the import would stay `received`. Partition keys are unique per registered import
    (files.partition_key); `duplicate` and rejected entries have none (they have no run)."""
    day = datetime.now(settings.tz).date()
    now = datetime.now(UTC)
    outcomes: list[Registered | Recorded] = []
    keys: list[dict] = []
    with write_transaction(engine) as conn:
        first, run_key_used = (_first_imports(conn, sorted({sha for _, sha in uploads})) if detect_duplicates
                               else ({}, set()))
        slugs = sorted({u.account_slug for u, _ in uploads if u.account_slug and account_id is None})
        account_ids = dict(conn.execute(sa.select(accounts.c.slug, accounts.c.id)
                                        .where(accounts.c.slug.in_(slugs))).all()) if slugs else {}
        for upload, sha in uploads:
            size = upload.path.stat().st_size
            profile = upload.profile
            earlier = first.get((sha, profile.name, profile.version) if profile else (sha, None, None))
            values = dict(file_name=upload.path.name, sha256=sha, size_bytes=size, created_at=now,
                          profile=profile.name if profile else None,
                          profile_version=profile.version if profile else None)
            if earlier is not None:
                moved = move_without_overwrite(upload.path, settings.processed_dir, day)
                duplicate_id = _insert(conn, values, status="duplicate", stage="done", file_path=str(moved),
                                       duplicate_of_id=earlier["id"], account_id=earlier["account_id"],
                                       finished_at=now, message=_duplicate_message(earlier, settings.lang))
                outcomes.append(Recorded(duplicate_id, "duplicate"))
                continue
            owner = account_id if account_id is not None else account_ids.get(upload.account_slug)
            if upload.account_slug and owner is None:
                moved = move_without_overwrite(upload.path, settings.failed_dir, day)
                failed_id = _insert(conn, values, status="failed", stage="received", file_path=str(moved),
                                    failure_kind="bad_input", finished_at=now,
                                    message=message("unknown_account_folder", settings.lang,
                                                    folder=upload.account_slug))
                outcomes.append(Recorded(failed_id, "failed"))
                continue
            import_id = _insert(conn, values, status="received", stage="received", file_path=str(upload.path),
                                account_id=owner)
            key = partition_key(upload.path.name, sha, import_id)
            keys.append({"import_id": import_id, "key": key})
            outcomes.append(Registered(import_id, key, run_key(sha, profile, import_id if sha in run_key_used
                                                               else None), upload.path))
            # Same bytes twice in one batch: the second is a duplicate of the first.
            first.setdefault((sha, values["profile"], values["profile_version"]),
                             {"id": import_id, "account_id": owner, "file_name": upload.path.name,
                              "status": "received", "partition_key": key})
            first.setdefault((sha, None, None), first[(sha, values["profile"], values["profile_version"])])
        if keys:
            conn.execute(imports.update().where(imports.c.id == sa.bindparam("import_id"))
                         .values(partition_key=sa.bindparam("key")), keys)
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
    """One pass over the upload folder (the sensor's tick): settled files are hashed and registered.

    Settled: the previous scan saw the same size and mtime, or, for the others, they are the same again
    after imports.settle_seconds (one wait for them all; 0: no wait, the next scan decides). Sizes and
    mtimes are compared, never a clock: the file server's clock and mtime granularity do not matter."""
    started = time.monotonic()
    uploads_dir = settings.uploads_dir
    result = ScanResult()
    if not uploads_dir.is_dir():
        return result
    in_flight = _in_flight_paths(engine, settings.uploads_dir)
    seen: list[tuple[Path, str, list[int], bool]] = []  # path, relative path, signature, settled already
    for directory, subdirs, files in os.walk(uploads_dir):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        for name in sorted(files):
            path = Path(directory) / name
            if is_partial_name(name) or str(path) in in_flight:
                continue
            signature = _signature(path)
            if signature is not None:
                relative = str(path.relative_to(uploads_dir))
                seen.append((path, relative, signature, previous.get(relative) == signature))
    settle_s = settings.imports.settle_seconds
    if settle_s and any(not settled for *_, settled in seen):
        time.sleep(settle_s)
        seen = [(path, relative, again, again == signature)
                for path, relative, signature, _ in seen if (again := _signature(path)) is not None]
    ready: list[tuple[Upload, str]] = []
    for path, relative, signature, settled in seen:
        if not settled or time.monotonic() - started > time_budget_s:
            result.deferred += settled
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


def _signature(path: Path) -> list[int] | None:
    """[size, mtime_ns]; None when the file is gone."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return [stat.st_size, stat.st_mtime_ns]
