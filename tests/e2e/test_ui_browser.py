"""The Dagster UI in a real browser (Debian's chromium driven by playwright) after the project's samples were
imported the way users import them: copied into data/uploads/ while `dagster dev` runs (as `make run` starts
it), so that upload_sensor registers them and the daemon runs their imports.

A screenshot of every page visited goes to a folder under pytest's tmp_path, whose path the tests print (shown
with `-s`, or in a failure's captured output).
Without /usr/bin/chromium or playwright the tests skip loudly; under CI=true they fail instead.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from nightshift.imports.files import partition_key, sha256_of
from tests.conftest import PROJECT_ROOT, unavailable
from tests.e2e.dagster_dev import DagsterDev, dagster_dev_env, query_workspace, running_dagster_dev

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Locator, Page

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
SAMPLES = sorted(path for path in (PROJECT_ROOT / "samples").iterdir() if path.is_file())
# A sample with an invalid row: its import ends `partial`, and its run still succeeds.
PARTIAL_SAMPLE = PROJECT_ROOT / "samples" / "clients.csv"
IMPORTS_TIMEOUT_S = 240
COMMUNITY_DIALOG_WAIT_MS = 15_000
RUNS_LIST_WAIT_MS = 30_000
RUNS_IN_FLIGHT = {"QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING"}
# What the UI shows when a query, a page or a code location fails.
ERROR_TEXTS = ("PythonError", "Error loading", "Something went wrong", "failed to load", "Unexpected GraphQL error",
               "An unexpected error occurred", "An error occurred")
METADATA_KEYS = ("rows_total", "inserted", "invalid", "rows_per_second")

RUNS_QUERY = """
{
  runsOrError(filter: {pipelineName: "import_job"}) {
    __typename
    ... on Runs { results { runId status tags { key value } } }
  }
}
"""

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class ImportedSamples:
    dev: DagsterDev
    run_ids: dict[str, str]  # sample file name -> id of a successful run of its import


@dataclass(frozen=True)
class Browsing:
    """A browser page on the running UI, where the visited pages' screenshots go, and the script errors the
    page raised."""

    page: Page
    screenshots: Path
    script_errors: list[str]

    @classmethod
    def open(cls, context: BrowserContext, screenshots: Path) -> Browsing:
        page = context.new_page()
        script_errors: list[str] = []
        page.on("pageerror", lambda error: script_errors.append(str(error)))
        return cls(page, screenshots, script_errors)

    @contextmanager
    def visiting(self, name: str) -> Iterator[None]:
        """The block's checks of the current page, then its screenshot (taken also when a check fails) and the
        check that it shows no error."""
        try:
            yield
            self.page.wait_for_load_state("networkidle")
        finally:
            self.page.screenshot(path=self.screenshots / f"{name}.png", full_page=True)
        shown = self.page.locator("body").inner_text()
        errors = [text for text in ERROR_TEXTS if text in shown]
        assert not errors, f"{name} ({self.page.url}) shows an error: {errors}"
        assert not self.script_errors, f"{name} ({self.page.url}): script errors {self.script_errors}"


def partition_prefix(sample: Path) -> str:
    """What the partition key of an upload of `sample` starts with: its sanitised stem and 12 hex of its sha256
    (the import id that ends the key depends on the order the sensor registered the files)."""
    return partition_key(sample.name, sha256_of(sample), 0).removesuffix("-0")


def partition_title(sample: Path) -> re.Pattern[str]:
    """The partitions list shows a long key cut in the middle; its container's title holds it whole."""
    return re.compile(rf"^{re.escape(partition_prefix(sample))}-\d+$")


def browser_missing() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is not installed (pip install -e '.[dev]')"
    if not CHROMIUM.exists():
        return f"no browser at {CHROMIUM} (apt-get install chromium)"
    return None


def partition_of(run: dict) -> str | None:
    return next((tag["value"] for tag in run["tags"] if tag["key"] == "dagster/partition"), None)


def wait_for_sample_imports(dev: DagsterDev) -> dict[str, str]:
    """The id of a successful import run per sample file name, once no import run is in flight any more."""
    prefixes = {sample.name: partition_prefix(sample) for sample in SAMPLES}
    deadline = time.monotonic() + IMPORTS_TIMEOUT_S
    runs: list[dict] = []
    while time.monotonic() < deadline:
        if dev.process.poll() is not None:
            pytest.fail(f"dagster dev exited with {dev.process.returncode}:\n{dev.log_tail()}")
        runs = dev.graphql(RUNS_QUERY)["runsOrError"]["results"]
        succeeded = {name: run["runId"] for name, prefix in prefixes.items() for run in runs
                     if run["status"] == "SUCCESS" and (partition_of(run) or "").startswith(f"{prefix}-")}
        if len(succeeded) == len(prefixes) and not any(run["status"] in RUNS_IN_FLIGHT for run in runs):
            return succeeded
        time.sleep(2)
    states = "\n".join(f"{partition_of(run)}: {run['status']}" for run in runs) or "no import run"
    pytest.fail(f"the samples' imports did not all succeed within {IMPORTS_TIMEOUT_S} s:\n{states}\n"
                f"{dev.log_tail()}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    missing = browser_missing()
    if missing:
        unavailable(f"BROWSER TESTS NOT RUN: {missing}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def imported(browser: Browser, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ImportedSamples]:
    """`dagster dev` with the samples imported. Asks for the browser first, so that a machine without one skips
    before `dagster dev` starts."""
    tmp_path = tmp_path_factory.mktemp("ui_browser")
    config = tmp_path / "nightshift.yaml"
    config.write_text("{}\n")  # a nightshift.yaml in the project folder stays out of the test
    env = dagster_dev_env(tmp_path, PROJECT_ROOT / "dagster.yaml", {"NIGHTSHIFT_CONFIG": str(config)})
    init = subprocess.run([str(PROJECT_ROOT / ".venv/bin/nightshift"), "init"], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert init.returncode == 0, f"nightshift init failed:\n{init.stdout}\n{init.stderr}"
    with running_dagster_dev(tmp_path, env) as dev:
        query_workspace(dev)
        for sample in SAMPLES:
            shutil.copyfile(sample, dev.data_dir / "uploads" / sample.name)
        yield ImportedSamples(dev, wait_for_sample_imports(dev))


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ui_screenshots")
    print(f"screenshots of the pages visited: {folder}")
    return folder


@pytest.fixture(scope="module")
def ui_context(browser: Browser, imported: ImportedSamples, screenshots: Path) -> Iterator[BrowserContext]:
    """A browser context on the running UI that has skipped the "Join the Dagster community" dialog of the
    first visit (the UI remembers it in the browser's storage)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    context = browser.new_context(base_url=imported.dev.url, viewport={"width": 1400, "height": 1000})
    first = Browsing.open(context, screenshots)
    first.page.goto("/")
    with first.visiting("00-overview"):
        dialog = first.page.get_by_role("dialog").filter(has_text="Join the Dagster community")
        try:
            dialog.get_by_role("button", name="Skip", exact=True).click(timeout=COMMUNITY_DIALOG_WAIT_MS)
        except PlaywrightTimeoutError:
            pass  # not asked (another UI version, or a storage that already answered)
    first.page.close()
    yield context
    context.close()


@pytest.fixture
def browsing(ui_context: BrowserContext, screenshots: Path) -> Iterator[Browsing]:
    browsing = Browsing.open(ui_context, screenshots)
    yield browsing
    browsing.page.close()


@pytest.fixture
def expect():
    from playwright.sync_api import expect

    return expect


def link_named(page: Page, text: str) -> Locator:
    """A link showing `text` (a link's name also holds the names of its icons)."""
    return page.get_by_role("link", name=re.compile(rf"(^|\s){re.escape(text)}$"))


def test_catalog_and_lineage_show_the_imports_group(browsing: Browsing, expect) -> None:
    page = browsing.page
    page.goto("/assets")
    with browsing.visiting("01-catalog"):
        expect(link_named(page, "import_batch")).to_be_visible()
        expect(link_named(page, "imports"), "import_batch is not in the asset group `imports`").to_be_visible()

    page.get_by_role("link", name="View lineage").click()
    with browsing.visiting("02-global-lineage"):
        expect(page.get_by_text("Global asset lineage")).to_be_visible()
        # Several domains: the global graph shows each asset group as one box.
        for group in ("imports", "quotas", "ai"):
            expect(page.get_by_text(group, exact=True).first).to_be_visible()

    page.goto("/assets")
    link_named(page, "imports").click()
    with browsing.visiting("03-lineage-of-group-imports"):
        expect(page).to_have_url(re.compile(r"group%3A%22imports%22|group:\"imports\""))
        expect(page.get_by_text("import_batch", exact=True).first).to_be_visible()

    page.goto("/locations/nightshift/asset-groups/imports")
    with browsing.visiting("04-group-imports"):
        expect(page.get_by_text("Asset Group in")).to_be_visible()
        expect(page.get_by_text("imports", exact=True).first).to_be_visible()
        expect(page.get_by_text("import_batch", exact=True).first).to_be_visible()


def test_partitions_page_lists_every_sample(browsing: Browsing, expect) -> None:
    page = browsing.page
    page.goto("/assets/import_batch?view=partitions")
    with browsing.visiting("05-import_batch-partitions"):
        expect(page.get_by_text(f"Materialized ({len(SAMPLES)})")).to_be_visible()
        expect(page.get_by_text("Failed (0)")).to_be_visible()
        for sample in SAMPLES:
            expect(page.get_by_title(partition_title(sample)), f"no partition for {sample.name}").to_be_visible()


def test_run_page_shows_the_import_metadata(browsing: Browsing, expect, imported: ImportedSamples) -> None:
    page = browsing.page
    page.goto("/assets/import_batch?view=partitions")
    page.get_by_title(partition_title(PARTIAL_SAMPLE)).click()
    with browsing.visiting("06-partition-latest-materialization"):
        expect(page.get_by_text("Latest materialization")).to_be_visible()
        for key in METADATA_KEYS:
            expect(page.get_by_text(key, exact=True)).to_be_visible()

    page.goto(f"/runs/{imported.run_ids[PARTIAL_SAMPLE.name]}")
    with browsing.visiting("07-run-materialization"):
        expect(page.get_by_text("Success", exact=True).first).to_be_visible()
        row = page.locator("[data-index]").filter(has_text="Materialized value import_batch.")
        row.get_by_role("button", name="View full message").click()
        dialog = page.get_by_role("dialog")
        expect(dialog.get_by_text("ASSET_MATERIALIZATION")).to_be_visible()
        expect(dialog.get_by_text("partial", exact=True)).to_be_visible()
        for key in METADATA_KEYS:
            expect(dialog.get_by_text(key, exact=True)).to_be_visible()


def test_automation_page_lists_the_sensors_and_the_schedule(browsing: Browsing, expect) -> None:
    page = browsing.page
    page.goto("/overview/automation")
    with browsing.visiting("08-automation"):
        for sensor in ("upload_sensor", "import_failure_sensor", "run_failure_alerts"):
            expect(page.get_by_text(sensor, exact=True)).to_be_visible()
        expect(page.get_by_text("database_health_hourly", exact=True)).to_be_visible()


def test_runs_list_tags_a_partial_import_partial(browsing: Browsing, expect, imported: ImportedSamples) -> None:
    """A partial import is a successful run like a clean one: its tag says it was partial (user tags are
    shown in the runs list; Dagster's own are behind "View all tags")."""
    page = browsing.page
    page.goto("/runs?q%5B0%5D=job%3Aimport_job")
    with browsing.visiting("09-runs-list-import_job"):
        for sample, status in ((PARTIAL_SAMPLE.name, "partial"), ("villes.csv", "succeeded")):
            run_link = page.get_by_role("link").filter(has=page.get_by_text(imported.run_ids[sample][:8], exact=True))
            expect(run_link, f"the run of {sample} is not listed").to_be_visible(timeout=RUNS_LIST_WAIT_MS)
            # The run's cell: the nearest container of its link that also holds a status tag.
            cell = run_link.locator("xpath=ancestor::*[.//*[starts-with(normalize-space(.), "
                                    "'nightshift/import_status:')]][1]")
            expect(cell.get_by_text(f"nightshift/import_status: {status}", exact=True)).to_be_visible()
