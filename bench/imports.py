"""Import benchmark: nightshift vs its baselines, measured side by side in one run.

Generates a French businesses CSV like the real FOX export (BENCH_ROWS, default 1,000,000: every business
its own SIREN, SIRET, name, phone, e-mail and website; categories and cities repeat) and an XLSX
(BENCH_XLSX_ROWS, default 200,000), then measures:
- `nightshift import` end to end (the CLI, a subprocess: rows/s; in a second run of the same import, the
  peak memory of the CLI and its worker processes together, as summed proportional set sizes) on
  SQLite and PostgreSQL;
- the limits: the same rows written to the same `businesses` table with nothing parsed or validated —
  PostgreSQL: raw COPY into a staging table + one INSERT … ON CONFLICT merge; SQLite: executemany of
  in-memory tuples into a TEMP table + the same merge;
- pandas `read_csv` + `to_sql`; a per-row SELECT-then-INSERT loop on a 10,000-row sample (the old way);
- XLSX reading: openpyxl read-only vs python-calamine;
- the path users take: the same file (SQLite, then a PostgreSQL app database), and a burst of 50 client
  files of 200 rows, moved into data/uploads/ of a running `dagster dev`, timed from the drop to the
  imports' end; the SQLite drops at three places spread over the daemon's 5-s pass of the sensors, the
  others in its middle (a user's drop falls anywhere in it);
- the earlier repeated-value file (about 90 distinct phones), as a labelled second figure.
Figures and ratios go to BENCHMARKS.md. Targets: PostgreSQL ≥ 0.5 × limit; SQLite ≥ 100,000 rows/s;
the dropped file within 1.5 × the CLI time; the burst ≤ 90 s; calamine ≥ 6 × openpyxl; peak memory
≤ 500 MB for the 1M-row CSV.
"""

import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from bench._shared import PROJECT_ROOT, create_pg_database, drop_pg_database, write_section
from nightshift.db.engine import create_engine
from nightshift.imports.prepare import IN_FLIGHT_PER_WORKER, MAX_PROCESSES
from nightshift.imports.service import CHUNK_ROWS

HEADER = ["siren", "nom", "siret", "nom_commercial", "adresse", "code_postal", "ville_nom", "naf_code",
          "naf_libelle", "telephone", "email_contact", "site_web", "is_active"]


def luhn_complete(prefixes: np.ndarray, digits: int) -> np.ndarray:
    """Append the Luhn check digit to integer prefixes of `digits` digits (vectorised)."""
    matrix = (prefixes[:, None] // 10 ** np.arange(digits - 1, -1, -1)) % 10
    weights = np.where(np.arange(digits)[::-1] % 2 == 0, 2, 1)  # positions doubled once the check digit is appended
    doubled = matrix * weights
    total = np.where(doubled > 9, doubled - 9, doubled).sum(axis=1)
    return prefixes * 10 + (10 - total % 10) % 10


STREET_KINDS = np.array(["rue", "avenue", "boulevard", "place", "chemin", "impasse", "allée", "quai", "route"])
FIRST_NAMES = np.array(["Jean", "Marie", "Louis", "Anne", "Pierre", "Jeanne", "Victor", "Louise", "Émile", "Hélène",
                        "Jules", "Camille", "Henri", "Simone", "Paul", "Lucie", "André", "Claire", "René", "Thérèse"])
LAST_NAMES = np.array(["Moulin", "Jaurès", "Hugo", "Zola", "Curie", "Pasteur", "Gambetta", "Voltaire", "Ferry", "Fabre",
                       "Mistral", "Péguy", "Daudet", "Bizet", "Lumière", "Renoir", "Clemenceau", "Cézanne", "Sand",
                       "Berlioz"])
CITIES = np.array(["Saint-Étienne", "Lyon", "Besançon", "Orléans", "Bourg-en-Bresse", "Nîmes", "Béziers",
                   "Marseille", "Toulouse", "Nantes", "Strasbourg", "Montpellier", "Bordeaux", "Lille", "Rennes",
                   "Reims", "Le Havre", "Grenoble", "Dijon", "Angers", "Villeurbanne", "Clermont-Ferrand",
                   "Le Mans", "Aix-en-Provence", "Brest", "Tours", "Amiens", "Limoges", "Annecy", "Perpignan",
                   "Metz", "Rouen", "Mulhouse", "Caen"])
NAF = np.array([("6201Z", "Programmation informatique"), ("5610A", "Restauration traditionnelle"),
                ("4711D", "Supermarchés"), ("9602A", "Coiffure"), ("4321A", "Travaux d’installation électrique"),
                ("6920Z", "Activités comptables"), ("8621Z", "Activité des médecins généralistes"),
                ("4520A", "Entretien et réparation de véhicules automobiles légers"), ("1071C", "Boulangerie"),
                ("6831Z", "Agences immobilières")])
PHONE_LAYOUTS = 4  # +33 6 12 34 56 78 | 06 12 34 56 78 | 0612345678 | 06.12.34.56.78
DOMAINS = np.array(["orange.fr", "gmail.com", "wanadoo.fr", "free.fr", "laposte.net", "sfr.fr", "outlook.fr"])


# The digit after the French prefix of numbers that exist in metropolitan France (libphonenumber's FR
# metadata): 04 0…, 06 3…, 06 9… and 07 0–2… are not allocated; 02 6… and 05 9… are overseas regions.
FIRST_SUBSCRIBER_DIGITS = {"1": "0123456789", "2": "012345789", "3": "0123456789", "4": "123456789",
                           "5": "012345678", "6": "0124578", "7": "3456789"}


def generate_rows(n: int, seed: int = 7) -> pd.DataFrame:
    """French businesses as the FOX export holds them: every business its own SIREN, SIRET, name, phone,
    e-mail, website and street address; categories (NAF) and cities repeat."""
    rng = np.random.default_rng(seed)
    siren = luhn_complete(rng.choice(np.arange(10_000_000, 99_999_999), n, replace=False), 8)
    siret = luhn_complete(siren * 10_000 + rng.integers(1, 9999, n), 13)
    numbers = pd.Series(np.arange(n))
    # A distinct subscriber number per business (1–5 for landlines by region, 6–7 mobiles), in the ranges
    # libphonenumber knows to exist, written the ways people write French numbers.
    prefix = pd.Series(rng.choice(np.array(list("1234567")), n))
    first_digits = prefix.map(FIRST_SUBSCRIBER_DIGITS)
    first = pd.Series([digits[i % len(digits)] for digits, i in zip(first_digits, rng.integers(0, 10, n), strict=True)])
    subscriber = first + pd.Series(rng.choice(10 ** 7, n, replace=False)).astype(str).str.zfill(7)
    pairs = [subscriber.str[i:i + 2] for i in range(0, 8, 2)]
    layout = rng.integers(0, PHONE_LAYOUTS, n)
    separators = np.array([" ", " ", "", "."])[layout]
    national = np.where(layout == 0, "+33 ", "0")
    telephone = (pd.Series(national) + prefix + pd.Series(np.where(layout == 0, " ", separators)) + pairs[0]
                 + separators + pairs[1] + separators + pairs[2] + separators + pairs[3])
    city = rng.integers(0, len(CITIES), n)
    naf = rng.integers(0, len(NAF), n)
    def pick(choices: np.ndarray) -> np.ndarray:
        return choices[rng.integers(0, len(choices), n)]

    street = (pd.Series(rng.integers(1, 1000, n)).astype(str) + " " + pick(STREET_KINDS) + " " + pick(FIRST_NAMES)
              + " " + pick(LAST_NAMES))
    return pd.DataFrame({
        "siren": siren.astype(str),
        "nom": numbers.map("Société d’Études Lefèvre n°{}".format),
        "siret": siret.astype(str),
        "nom_commercial": numbers.map("Chez Léon {}".format),
        "adresse": street,
        "code_postal": pd.Series(rng.integers(1000, 95999, n)).astype(str),  # 4-digit ones get padded
        "ville_nom": CITIES[city],
        "naf_code": NAF[naf, 0],
        "naf_libelle": NAF[naf, 1],
        "telephone": telephone,
        "email_contact": numbers.map("contact{}@".format) + DOMAINS[rng.integers(0, len(DOMAINS), n)],
        "site_web": numbers.map("www.entreprise-{}.fr".format),
        "is_active": np.where(rng.random(n) < 0.9, "oui", "non"),
    })


def generate_repeated_rows(n: int, seed: int = 7) -> pd.DataFrame:
    """The earlier benchmark file, kept as a labelled second figure: about 90 distinct phones and one
    website, so parsing them is nearly free. Real exports are not like this."""
    frame = generate_rows(n, seed)
    rng = np.random.default_rng(seed)
    frame["telephone"] = "+33 4 77 " + pd.Series(rng.integers(10, 99, n)).astype(str) + " 00 00"
    frame["site_web"] = "www.exemple.fr"
    frame["nom_commercial"] = "Café œuvre"
    return frame


def timed(fn) -> tuple[float, object]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            tree.setdefault(int(fields[1]), []).append(int(entry.name))
    return tree


def _tree_memory_kb(root: int) -> int:
    """Memory of a process and all its descendants (the import's worker processes too): the sum of their
    proportional set sizes, so pages the workers share with their parent count once."""
    tree, total, stack = _children(), 0, [root]
    while stack:
        pid = stack.pop()
        stack.extend(tree.get(pid, []))
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        total += next((int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:")), 0)
    return total


def bench_config(workdir: Path) -> Path:
    """The settings of a French user with big exports, in `workdir` (the CLI and the daemon read the same):
    the export's numbers are national French ones (the default region is ML), and its million rows take
    213 MB (the default limit is 200 MiB)."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "nightshift.yaml"
    path.write_text("imports:\n  default_phone_region: FR\n  max_bytes: 314572800\n", encoding="utf-8")
    return path


def run_cli_import(path: Path, database_url: str, workdir: Path, *, sample_memory: bool = False) -> dict:
    """`nightshift import` in a subprocess: wall time, or with `sample_memory` the peak memory of the CLI
    and its worker processes together (sampled every 50 ms: reading their page tables takes about a
    quarter of a core, so a run that is timed is not sampled)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NIGHTSHIFT_")}
    env.update(NIGHTSHIFT_DATABASE_URL=database_url, NIGHTSHIFT_DATA_DIR=str(workdir / "data"),
               DAGSTER_HOME=str(workdir / "dagster_home"), NIGHTSHIFT_CONFIG=str(bench_config(workdir)))
    nightshift = str(PROJECT_ROOT / ".venv" / "bin" / "nightshift")
    subprocess.run([nightshift, "db", "upgrade"], env=env, check=True, capture_output=True)
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen([nightshift, "import", str(path), "--profile", "businesses", "--json"],
                                   env=env, stdout=out, stderr=err, text=True)
        peak_kb = 0
        while sample_memory and process.poll() is None:
            peak_kb = max(peak_kb, _tree_memory_kb(process.pid))
            time.sleep(0.05)
        process.wait()
        seconds = time.perf_counter() - started
        out.seek(0)
        summary = json.loads(out.read())
    return {"seconds": seconds, "rows": summary["rows_total"], "inserted": summary["inserted"],
            "invalid": summary["invalid"], "status": summary["status"], "peak_mb": peak_kb / 1024,
            "timings": summary["timings"], "exit": process.returncode}


# Timed SQLite imports of the same file; the figure is their median.
SQLITE_RUNS = 3
# The limit: the same rows written to the same `businesses` table (its indexes and upsert) with no parsing
# or validation at all. Each CSV field maps to its column as is.
LIMIT_COLUMNS = {"natural_key": "'siret:' || siret", "name": "nom", "trade_name": "nom_commercial", "siren": "siren",
                 "siret": "siret", "naf_code": "naf_code", "naf_label": "naf_libelle", "address": "adresse",
                 "postal_code": "code_postal", "city": "ville_nom", "phone": "telephone", "email": "email_contact",
                 "website": "site_web", "is_active": "is_active = 'oui'", "content_hash": "{hash}"}


def _limit_upsert(hash_expression: str, source: str) -> str:
    columns = ", ".join(LIMIT_COLUMNS)
    expressions = ", ".join(e.format(hash=hash_expression) for e in LIMIT_COLUMNS.values())
    updates = ", ".join(f"{c} = excluded.{c}" for c in LIMIT_COLUMNS if c != "natural_key")
    return (f"INSERT INTO businesses ({columns}) SELECT {expressions} FROM {source} WHERE true "
            f"ORDER BY 1 ON CONFLICT (natural_key) DO UPDATE SET {updates} "
            "WHERE businesses.content_hash IS DISTINCT FROM excluded.content_hash")


def pg_limit(csv_path: Path, url: str) -> float:
    """Raw COPY of the CSV into a staging table + one INSERT … ON CONFLICT merge into `businesses`: seconds."""
    import psycopg

    from nightshift.db.migrate import upgrade
    from nightshift.imports.merge import sort_memory_mb

    upgrade(url)
    conninfo = sa.engine.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    columns = ", ".join(f"{c} text" for c in HEADER)
    with psycopg.connect(conninfo) as conn:
        started = time.perf_counter()
        conn.execute(f"CREATE TEMP TABLE limit_staging ({columns})")
        copy_sql = "COPY limit_staging FROM STDIN (FORMAT csv, HEADER true, DELIMITER ';', ENCODING 'WIN1252')"
        with conn.cursor().copy(copy_sql) as copy, csv_path.open("rb") as handle:
            while block := handle.read(1 << 20):
                copy.write(block)
        # The same sort memory as the import's own merge.
        staged_bytes = conn.execute("SELECT pg_total_relation_size('limit_staging')").fetchone()[0]
        conn.execute(f"SET LOCAL work_mem = '{sort_memory_mb(staged_bytes)}MB'")
        conn.execute(_limit_upsert("left(md5(limit_staging::text), 16)", "limit_staging"))
        conn.commit()
        return time.perf_counter() - started


def sqlite_limit(frame: pd.DataFrame, url: str) -> dict[str, float]:
    """The rows, already in memory as Python tuples, written by executemany into a TEMP table and merged
    into `businesses` in one transaction: what SQLite itself costs, with nothing parsed. Seconds of each
    phase: staging (executemany), merge (the upsert), commit (with the WAL checkpoint it triggers)."""
    from nightshift.db.migrate import upgrade

    upgrade(url)
    records = list(frame[HEADER].itertuples(index=False, name=None))
    engine = create_engine(url)
    with engine.connect() as conn:
        cursor = conn.connection.driver_connection.cursor()
        started = time.perf_counter()
        cursor.execute("BEGIN IMMEDIATE")
        cursor.execute(f"PRAGMA threads = {os.cpu_count() or 1}")  # as the import's merge sorts
        cursor.execute(f"CREATE TEMP TABLE limit_staging ({', '.join(f'{c} text' for c in HEADER)})")
        cursor.executemany(f"INSERT INTO limit_staging VALUES ({', '.join('?' for _ in HEADER)})", records)
        staged = time.perf_counter()
        cursor.execute(_limit_upsert("siret || nom", "limit_staging"))
        merged = time.perf_counter()
        cursor.execute("COMMIT")
        committed = time.perf_counter()
    engine.dispose()
    return {"staging_s": staged - started, "merge_s": merged - staged, "commit_s": committed - merged,
            "total_s": committed - started}


def pandas_to_sql(frame: pd.DataFrame, url: str) -> float:
    engine = sa.create_engine(url)
    seconds, _ = timed(lambda: frame.to_sql("to_sql_baseline", engine, if_exists="replace", index=False,
                                            chunksize=10_000))
    engine.dispose()
    return seconds


def per_row_loop(frame: pd.DataFrame, url: str) -> float:
    """What the replaced Celery task did: per row, SELECT by siren, then INSERT or UPDATE, commit."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE per_row_baseline (siren text PRIMARY KEY, nom text, siret text, "
                             "code_postal text, telephone text, email text)"))
    started = time.perf_counter()
    with engine.connect() as conn:
        for row in frame.itertuples(index=False):
            values = {"siren": row.siren, "nom": row.nom, "siret": row.siret, "cp": row.code_postal,
                      "tel": row.telephone, "email": row.email_contact}
            found = conn.execute(sa.text("SELECT siren FROM per_row_baseline WHERE siren = :siren"), values).first()
            if found:
                conn.execute(sa.text("UPDATE per_row_baseline SET nom=:nom, siret=:siret, code_postal=:cp, "
                                     "telephone=:tel, email=:email WHERE siren=:siren"), values)
            else:
                conn.execute(sa.text("INSERT INTO per_row_baseline VALUES (:siren, :nom, :siret, :cp, :tel, :email)"),
                             values)
            conn.commit()
    seconds = time.perf_counter() - started
    engine.dispose()
    return seconds


def xlsx_reads(frame: pd.DataFrame, path: Path) -> tuple[float, float]:
    from openpyxl import Workbook, load_workbook
    from python_calamine import CalamineWorkbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Entreprises")
    sheet.append(HEADER)
    for record in frame.itertuples(index=False, name=None):
        sheet.append(list(record))
    workbook.save(path)

    def with_openpyxl() -> int:
        book = load_workbook(path, read_only=True, data_only=True)
        count = sum(1 for _ in book["Entreprises"].iter_rows(values_only=True))
        book.close()
        return count

    def with_calamine() -> int:
        return len(CalamineWorkbook.from_path(str(path)).get_sheet_by_name("Entreprises").to_python())

    openpyxl_s, rows_a = timed(with_openpyxl)
    calamine_s, rows_b = timed(with_calamine)
    assert rows_a == rows_b == len(frame) + 1
    return openpyxl_s, calamine_s


def code_location_load_cpu_s(tries: int = 3) -> float:
    """CPU seconds a fresh process spends importing and building the definitions, as each run worker does
    before its step (the median of `tries`)."""
    spent = []
    for _ in range(tries):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run([sys.executable, "-c", "import pipelines.definitions as d; d.defs"], cwd=PROJECT_ROOT,
                       check=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        spent.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(spent)


def cli_overhead(frame: pd.DataFrame, workdir: Path, *, sample_memory: bool = False) -> dict:
    """`nightshift import` of a 10-row file of the same kind (seconds, or with `sample_memory` the peak
    memory): starting the CLI with Dagster and the definitions and recording the run on the Dagster
    instance, the part of every import that does not depend on its size."""
    workdir.mkdir()
    path = workdir / "entreprises-10.csv"
    frame.head(10).to_csv(path, sep=";", index=False, encoding="cp1252")
    run = run_cli_import(path, f"sqlite:///{workdir / 'overhead.db'}", workdir, sample_memory=sample_memory)
    if run["status"] != "succeeded":
        raise RuntimeError(f"the 10-row import did not succeed: {run}")
    return run


def _sqlite_budget_note(sqlite: dict, rows: int, limit: dict[str, float], overhead_s: float) -> str:
    """Why the SQLite target is out of reach on this machine, from the run's own figures: about the least
    an import of these rows could take with nothing read or validated (the CLI's fixed cost, SQLite's
    staging spread over the processes, then its merge and commit, which run alone), and what is left
    of the target's time for reading and validating."""
    timings, cores = sqlite["timings"], min(os.cpu_count() or 1, MAX_PROCESSES)
    floor = overhead_s + limit["staging_s"] / cores + limit["merge_s"] + limit["commit_s"]
    budget = rows / 100_000
    work = timings["read_s"] + timings["validate_s"] + timings["stage_s"]
    return (f"SQLite: with nothing read or validated, importing these {rows:,} rows would still take about "
            f"{floor:.1f} s here — the CLI's fixed cost {overhead_s:.1f} s (a 10-row file) + SQLite's staging "
            f"{limit['staging_s']:.1f} s spread over {cores} processes + its merge {limit['merge_s']:.1f} s + "
            f"commit {limit['commit_s']:.1f} s (WAL checkpoint included), which run alone: at best about "
            f"{rows / floor:,.0f} rows/s. 100,000 rows/s allows {budget:.0f} s, which leaves "
            f"{max(budget - floor, 0):.1f} s for reading and validating the file on {cores} cores; this run's "
            f"reading, validating and staging took {work:.1f} s of process time"
            + (f", which {cores} processes would fit in that time only if each were busy from the first chunk to "
               "the last." if work <= cores * (budget - floor) else "."))


def _drop_note(daemon: dict, sqlite: dict) -> str:
    """Where the drop's time beyond the CLI's goes: costs each drop pays once, whatever the file."""
    fixed = daemon["created_after_s"] + daemon["started_after_s"]
    return (f"The SQLite drop (the median one, {daemon['after_tick_s']:.1f} s after a tick): its run was created "
            f"{daemon['created_after_s']:.1f} s after the drop (the daemon looks at sensors every "
            f"{SENSOR_PASS_S:.0f} s, the sensor waits `imports.settle_seconds` = 2 s for the file to "
            f"stay the same, then hashes it), started {daemon['started_after_s']:.1f} s later (the run queue, then a "
            f"run worker loading Dagster and the definitions), and ran {daemon['run_s']:.1f} s, against "
            f"{sqlite['seconds']:.1f} s for the CLI. Those {fixed:.1f} s before the run starts are paid once per drop: "
            f"within 1.5 × the CLI they leave the run {1.5 * sqlite['seconds'] - fixed:.1f} s.")


def _memory_note(peak_mb: float, base_mb: float) -> str:
    workers = min(os.cpu_count() or 1, MAX_PROCESSES) - 1
    return (f"Peak memory: {peak_mb:.0f} MB, of which {base_mb:.0f} MB is `nightshift import` of a 10-row file (the "
            "CLI with Dagster and the definitions loaded, no worker process); the other "
            f"{peak_mb - base_mb:.0f} MB are the worker server, its {workers} worker(s) with pandas loaded, and the "
            f"rows in flight: chunks of {CHUNK_ROWS:,} rows, {IN_FLIGHT_PER_WORKER} queued per worker, one the "
            "CLI prepares, the chunks held back to stay in file order, and the SQLite or PostgreSQL staging.")


def _burst_note(small: dict) -> str:
    cores = os.cpu_count() or 1
    return (f"The burst: {small['runs']} runs, one per file, each run, once started, a median of "
            f"{small['median_run_s']:.1f} s. Every run is a run worker process that first loads Dagster and the "
            f"definitions: {small['load_cpu_s']:.1f} s of CPU in a fresh process here, so {small['runs']} runs need "
            f"{small['runs'] * small['load_cpu_s'] / cores:.0f} s of this machine's {cores} cores before they "
            "import a row, beside the daemon's and the web server's own work. The design route left is importing "
            "the files of one sensor tick in one run (a partition each), which changes what the runs list shows "
            "per file (one run and one status tag for many files).")


FINAL_STATUSES = ("succeeded", "partial", "failed", "duplicate")
IMPORT_RUNS = ('{ runsOrError(filter: {pipelineName: "import_job"}) { ... on Runs { results { creationTime startTime '
               'endTime } } } }')
IMPORT_RUNS_IN_FLIGHT = ('{ runsOrError(filter: {pipelineName: "import_job", statuses: [QUEUED, NOT_STARTED, '
                         'STARTING, STARTED, CANCELING]}) { ... on Runs { results { runId } } } }')
UPLOAD_SENSOR_TICKS = ('{ sensorOrError(sensorSelector: {repositoryName: "__repository__", '
                       'repositoryLocationName: "nightshift", sensorName: "upload_sensor"}) { ... on Sensor { '
                       'sensorState { ticks(limit: 1) { timestamp } } } } }')
# The daemon evaluates the sensors in passes 5 s apart (Dagster's sensor daemon): where a drop falls in a
# pass decides how long it waits for the sensor's next tick.
SENSOR_PASS_S = 5.0
BURST_FILES, BURST_ROWS, BURST_TARGET_S = 50, 200, 90
PEAK_TARGET_MB = 500


def clients_file(path: Path, first: int, rows: int) -> None:
    """`rows` clients, each with its own Malian mobile number (international: the bench's settings are a
    French user's) and e-mail."""
    lines = ["Téléphone;Prénom;Nom;Email;Région"]
    lines += [f"+223 7{n:07d};Awa;Traoré {n};client{n}@exemple.ml;Bamako" for n in range(first, first + rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _after_a_tick(dev, after_tick_s: float) -> None:
    """Return `after_tick_s` after the start of an upload_sensor tick that starts after this call: a drop's
    place in the daemon's pass of the sensors, whenever `dagster dev` happened to start its passes."""
    def latest() -> float | None:
        ticks = dev.graphql(UPLOAD_SENSOR_TICKS)["sensorOrError"]["sensorState"]["ticks"]
        return ticks[0]["timestamp"] if ticks else None

    seen = latest()
    while (tick := latest()) == seen:
        time.sleep(0.05)
    time.sleep(max(0.0, tick + after_tick_s - time.time()))


def daemon_imports(files: list[tuple[str, Path]], workdir: Path, timeout_s: float = 1_800,
                   database_url: str | None = None, after_tick_s: float = SENSOR_PASS_S / 2) -> dict:
    """The path users take: `make run`'s `dagster dev` (SQLite instance; a SQLite app database unless
    `database_url` names another), the files moved into data/uploads/<profile>/ at once, `after_tick_s`
    after a tick of the upload sensor, then the seconds until the import log shows every import finished
    and no import run is left in flight (the sensor saw the file, the queued run started, imported it and
    ended)."""
    from tests.e2e.dagster_dev import dagster_dev_env, query_workspace, running_dagster_dev

    workdir.mkdir(parents=True, exist_ok=True)
    env = dagster_dev_env(workdir, PROJECT_ROOT / "dagster.yaml", {})
    env["NIGHTSHIFT_CONFIG"] = str(bench_config(workdir))
    if database_url:
        env["NIGHTSHIFT_DATABASE_URL"] = database_url
    subprocess.run([str(PROJECT_ROOT / ".venv/bin/nightshift"), "init"], env=env, check=True, capture_output=True)
    engine = create_engine(env["NIGHTSHIFT_DATABASE_URL"])
    final = sa.text(f"SELECT status, count(*) FROM imports WHERE NOT dry_run AND status IN {FINAL_STATUSES} "
                    "GROUP BY status")
    try:
        with running_dagster_dev(workdir, env) as dev:
            query_workspace(dev)
            uploads = dev.data_dir / "uploads"
            _after_a_tick(dev, after_tick_s)
            started, dropped_at = time.perf_counter(), time.time()
            for profile, path in files:
                (uploads / profile).mkdir(parents=True, exist_ok=True)
                os.utime(path)  # modified now, as a file copied or uploaded in: the sensor waits for it to settle
                os.replace(path, uploads / profile / path.name)  # one rename: the sensor never sees half a file
            while time.perf_counter() - started < timeout_s:
                with engine.connect() as conn:
                    statuses = dict(conn.execute(final).all())
                # Finished once the import log says so and the import runs have ended (recorded their success).
                if sum(statuses.values()) >= len(files) and not dev.graphql(IMPORT_RUNS_IN_FLIGHT)[
                        "runsOrError"]["results"]:
                    seconds = time.perf_counter() - started
                    if set(statuses) != {"succeeded"}:
                        raise RuntimeError(f"the dropped files did not all import: {statuses}\n{dev.log_tail()}")
                    runs = dev.graphql(IMPORT_RUNS)["runsOrError"]["results"]
                    # The first run's path: the sensor registered the file and created its run, the queue
                    # started it in a run worker, the run imported it.
                    first = min(runs, key=lambda r: r["creationTime"])
                    return {"seconds": seconds, "after_tick_s": after_tick_s, "statuses": statuses, "runs": len(runs),
                            "median_run_s": statistics.median(r["endTime"] - r["startTime"] for r in runs),
                            "created_after_s": first["creationTime"] - dropped_at,
                            "started_after_s": first["startTime"] - first["creationTime"],
                            "run_s": first["endTime"] - first["startTime"]}
                time.sleep(0.25)
            raise RuntimeError(f"{len(files)} dropped file(s) not imported within {timeout_s:.0f} s: {statuses}")
    finally:
        engine.dispose()


def burst(workdir: Path) -> dict:
    staging = workdir / "staging"
    staging.mkdir(parents=True)
    files = []
    for number in range(BURST_FILES):
        path = staging / f"clients-{number:02d}.csv"
        clients_file(path, number * BURST_ROWS, BURST_ROWS)
        files.append(("clients", path))
    return daemon_imports(files, workdir / "daemon")


SECTION = "## Imports (bench/imports.py)"


def main() -> None:
    rows = int(os.environ.get("BENCH_ROWS", 1_000_000))
    xlsx_rows = int(os.environ.get("BENCH_XLSX_ROWS", 200_000))

    with tempfile.TemporaryDirectory(prefix="nightshift-bench-") as tmp:
        work = Path(tmp)
        frame = generate_rows(rows)
        csv_path = work / "entreprises.csv"
        frame.to_csv(csv_path, sep=";", index=False, encoding="cp1252")
        print(f"generated {rows:,} rows ({csv_path.stat().st_size / 1e6:.0f} MB)")

        # The median of a few runs: on a shared 2-core machine one run can be off by a tenth either way.
        sqlite_runs = []
        for number in range(SQLITE_RUNS):
            sqlite_runs.append(run_cli_import(csv_path, f"sqlite:///{work / f'bench-{number}.db'}",
                                              work / f"sqlite-{number}"))
            print("sqlite", sqlite_runs[-1])
        sqlite_runs.sort(key=lambda run: run["seconds"])
        sqlite = sqlite_runs[len(sqlite_runs) // 2]
        sqlite_rate = sqlite["rows"] / sqlite["seconds"]
        sqlite["peak_mb"] = run_cli_import(csv_path, f"sqlite:///{work / 'memory.db'}", work / "sqlite-memory",
                                           sample_memory=True)["peak_mb"]

        pg_url = create_pg_database()
        memory_url = create_pg_database()
        limit_url = create_pg_database()
        daemon_pg_url = create_pg_database()
        try:
            postgres = run_cli_import(csv_path, pg_url, work / "pg")
            print("postgresql", postgres)
            postgres["peak_mb"] = run_cli_import(csv_path, memory_url, work / "pg-memory",
                                                 sample_memory=True)["peak_mb"]
            dropped_pg = work / "drop-pg" / "entreprises.csv"
            dropped_pg.parent.mkdir()
            shutil.copyfile(csv_path, dropped_pg)
            daemon_pg = daemon_imports([("businesses", dropped_pg)], work / "daemon-file-pg",
                                       database_url=daemon_pg_url)
            print("dropped with dagster dev running, PostgreSQL app database", daemon_pg)
            limit_s = pg_limit(csv_path, limit_url)
            pg_rate, limit_rate = postgres["rows"] / postgres["seconds"], rows / limit_s
            sample = frame.head(min(rows, 200_000))
            to_sql_pg = len(sample) / pandas_to_sql(sample, limit_url)
            loop_pg = 10_000 / per_row_loop(frame.head(10_000), limit_url)
        finally:
            for url in (pg_url, memory_url, limit_url, daemon_pg_url):
                drop_pg_database(url)
        limit = sqlite_limit(frame, f"sqlite:///{work / 'limit.db'}")
        sqlite_limit_rate = rows / limit["total_s"]
        overhead_s = cli_overhead(frame, work / "overhead")["seconds"]
        peak = max(sqlite["peak_mb"], postgres["peak_mb"])
        if peak > PEAK_TARGET_MB:  # what the note on the missed target explains
            base_mb = cli_overhead(frame, work / "overhead-memory", sample_memory=True)["peak_mb"]
        to_sql_sqlite = len(sample) / pandas_to_sql(sample, f"sqlite:///{work / 'to_sql.db'}")
        loop_sqlite = 10_000 / per_row_loop(frame.head(10_000), f"sqlite:///{work / 'loop.db'}")

        openpyxl_s, calamine_s = xlsx_reads(frame.head(xlsx_rows), work / "entreprises.xlsx")

        repeated_path = work / "entreprises-repeated.csv"
        generate_repeated_rows(rows).to_csv(repeated_path, sep=";", index=False, encoding="cp1252")
        repeated = run_cli_import(repeated_path, f"sqlite:///{work / 'repeated.db'}", work / "sqlite-repeated")
        print("sqlite, repeated values", repeated)
        # The median of as many drops as CLI runs, at the middles of equal parts of the daemon's pass.
        drops = []
        for number in range(SQLITE_RUNS):
            dropped = work / f"drop-{number}" / "entreprises.csv"
            dropped.parent.mkdir()
            shutil.copyfile(csv_path, dropped)
            drops.append(daemon_imports([("businesses", dropped)], work / f"daemon-file-{number}",
                                        after_tick_s=(number + 0.5) / SQLITE_RUNS * SENSOR_PASS_S))
            print("dropped with dagster dev running", drops[-1])
        drops.sort(key=lambda run: run["seconds"])
        daemon = drops[len(drops) // 2]
        small = burst(work / "burst")
        if small["seconds"] > BURST_TARGET_S:  # what the note on the missed target explains
            small["load_cpu_s"] = code_location_load_cpu_s()
        print("burst", small)

    by_phase = sorted(drops, key=lambda run: run["after_tick_s"])
    results = [
        ("`nightshift import` SQLite, rows/s", f"{sqlite_rate:,.0f}", f"write limit (executemany + merge, "
         f"nothing parsed) {sqlite_limit_rate:,.0f} (×{sqlite_rate / sqlite_limit_rate:.2f}); per-row loop "
         f"{loop_sqlite:,.0f} (×{sqlite_rate / loop_sqlite:.0f}); pandas to_sql {to_sql_sqlite:,.0f}",
         f"≥ 100,000: {'met' if sqlite_rate >= 100_000 else 'NOT met'}"),
        ("`nightshift import` PostgreSQL, rows/s", f"{pg_rate:,.0f}", f"limit (COPY + merge into `businesses`, "
         f"nothing parsed) {limit_rate:,.0f} "
         f"(×{pg_rate / limit_rate:.2f}); per-row loop {loop_pg:,.0f}; pandas to_sql {to_sql_pg:,.0f}",
         f"≥ 0.5 × limit: {'met' if pg_rate >= 0.5 * limit_rate else 'NOT met'}"),
        ("peak memory of `nightshift import` (CLI + workers, PSS; a second, sampled run), MB", f"{peak:,.0f}",
         f"SQLite {sqlite['peak_mb']:.0f}, "
         f"PostgreSQL {postgres['peak_mb']:.0f}",
         f"≤ {PEAK_TARGET_MB}: {'met' if peak <= PEAK_TARGET_MB else 'NOT met'}"),
        ("the same file dropped in `data/uploads/` with `dagster dev` running (SQLite), rows/s from the drop to "
         "the import's end", f"{rows / daemon['seconds']:,.0f}", f"the CLI {sqlite_rate:,.0f} "
         f"(time × {daemon['seconds'] / sqlite['seconds']:.2f})",
         f"≤ 1.5 × the CLI time: {'met' if daemon['seconds'] <= 1.5 * sqlite['seconds'] else 'NOT met'}"),
        ("the same file dropped in `data/uploads/` with `dagster dev` running (PostgreSQL app database), rows/s "
         "from the drop to the import's end", f"{rows / daemon_pg['seconds']:,.0f}", f"the CLI {pg_rate:,.0f} "
         f"(time × {daemon_pg['seconds'] / postgres['seconds']:.2f})",
         f"≤ 1.5 × the CLI time: {'met' if daemon_pg['seconds'] <= 1.5 * postgres['seconds'] else 'NOT met'}"),
        (f"{BURST_FILES} client files × {BURST_ROWS} rows dropped at once with `dagster dev` running (SQLite), s "
         "from the drop to the last import's end", f"{small['seconds']:.0f}",
         f"the old system: 10,000 rows in 75 s; {BURST_FILES * BURST_ROWS / small['seconds']:,.0f} rows/s here",
         f"≤ {BURST_TARGET_S} s: {'met' if small['seconds'] <= BURST_TARGET_S else 'NOT met'}"),
        ("`nightshift import` SQLite, the earlier repeated-value file (about 90 distinct phones, one website: "
         "NOT like real exports), rows/s", f"{repeated['rows'] / repeated['seconds']:,.0f}",
         f"the real-like file {sqlite_rate:,.0f}", "label only"),
        (f"XLSX read, {xlsx_rows:,} rows, rows/s", f"calamine {xlsx_rows / calamine_s:,.0f}",
         f"openpyxl read-only {xlsx_rows / openpyxl_s:,.0f} (×{openpyxl_s / calamine_s:.1f})",
         f"≥ 6 × openpyxl: {'met' if openpyxl_s / calamine_s >= 6 else 'NOT met'}"),
    ]
    lines = [
        "",
        f"`make bench` on {datetime.now(UTC):%Y-%m-%d} — {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}. {rows:,}-row French businesses CSV (cp1252, `;`; every business its "
        "own SIREN, SIRET, name, phone, e-mail, website and nearly every one its own address), "
        f"{xlsx_rows:,}-row XLSX. Every figure is measured in the same run as its baseline. The CLI validates "
        f"with {min(os.cpu_count() or 1, MAX_PROCESSES)} processes (the default: one per core, at most "
        f"{MAX_PROCESSES}).", "",
        "| measure | nightshift | baselines (same run) | target |", "|---|---|---|---|",
        *[f"| {a} | {b} | {c} | {d} |" for a, b, c, d in results], "",
        f"Imports: SQLite {sqlite['status']} ({sqlite['inserted']:,} inserted, {sqlite['invalid']:,} invalid) in "
        f"{sqlite['seconds']:.1f} s, the median of {SQLITE_RUNS} runs "
        f"({', '.join(format(run['seconds'], '.1f') for run in sqlite_runs)} s); PostgreSQL {postgres['status']} in "
        f"{postgres['seconds']:.1f} s (both include starting the CLI and recording the run on the Dagster "
        f"instance). The SQLite drop: the median of {SQLITE_RUNS} "
        f"({', '.join(format(run['seconds'], '.1f') for run in by_phase)} s, dropped "
        f"{', '.join(format(run['after_tick_s'], '.1f') for run in by_phase)} s after a tick of the sensor), each "
        f"in a `dagster dev` of its own; the sensor looks at the folder at the daemon's {SENSOR_PASS_S:.0f}-s "
        "passes, so a drop waits for the next one, and registers a file once it stayed the same for "
        f"`imports.settle_seconds`. The PostgreSQL drop and the burst come {SENSOR_PASS_S / 2:.1f} s after a tick.",
        "",
        *([_sqlite_budget_note(sqlite, rows, limit, overhead_s), ""] if sqlite_rate < 100_000 else []),
        *([_drop_note(daemon, sqlite), ""] if daemon["seconds"] > 1.5 * sqlite["seconds"] else []),
        *([_burst_note(small), ""] if small["seconds"] > BURST_TARGET_S else []),
        *([_memory_note(peak, base_mb), ""] if peak > PEAK_TARGET_MB else []),
        "Where the imports spent their time (seconds, from the import log):", "",
        "| database | " + " | ".join(sqlite["timings"]) + " |", "|---|" + "---|" * len(sqlite["timings"]),
        *[f"| {name} | " + " | ".join(f"{run['timings'].get(k, 0):.1f}" for k in sqlite["timings"]) + " |"
          for name, run in (("SQLite", sqlite), ("PostgreSQL", postgres))], "",
    ]
    write_section(SECTION, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
