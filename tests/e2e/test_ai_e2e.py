"""A fresh machine as `make run` starts it (`nightshift init`, then `dagster dev` with its daemon): a sample
file dropped into the upload folder is imported by upload_sensor's run, ai_import_sensor starts ai_content
for it, and its businesses get their texts (template-v1, charged to the local demo account) without anyone
touching the UI."""

import shutil
import subprocess
import time

import pytest
import sqlalchemy as sa

from nightshift.db.engine import create_engine
from nightshift.db.schema import accounts, ai_contents, ai_requests, businesses, imports
from tests.conftest import PROJECT_ROOT
from tests.e2e.dagster_dev import dagster_dev_env, query_workspace, running_dagster_dev

SAMPLE = PROJECT_ROOT / "samples" / "entreprises.csv"
KINDS = ("description", "meta_description")
DEADLINE_S = 100


def texts_of_the_sample(engine) -> tuple[set[int], set[tuple[int, str]]]:
    """The businesses the sample's import wrote and the (business, kind) texts they have."""
    with engine.connect() as conn:
        import_ids = list(conn.execute(sa.select(imports.c.id).where(imports.c.file_name == SAMPLE.name)).scalars())
        if not import_ids:
            return set(), set()
        wrote = set(conn.execute(sa.select(businesses.c.id).where(businesses.c.import_id.in_(import_ids))).scalars())
        texts = {tuple(row) for row in conn.execute(
            sa.select(ai_contents.c.business_id, ai_contents.c.kind).where(ai_contents.c.business_id.in_(wrote)))}
    return wrote, texts


@pytest.mark.slow
def test_a_sample_dropped_into_the_upload_folder_gets_its_ai_texts(tmp_path):
    config = tmp_path / "nightshift.yaml"
    config.write_text("{}\n", encoding="utf-8")  # the defaults: a nightshift.yaml of the project stays out
    env = dagster_dev_env(tmp_path, PROJECT_ROOT / "dagster.yaml", {"NIGHTSHIFT_CONFIG": str(config)})
    init = subprocess.run([str(PROJECT_ROOT / ".venv/bin/nightshift"), "init"], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert init.returncode == 0, f"nightshift init failed:\n{init.stdout}\n{init.stderr}"
    engine = create_engine(env["NIGHTSHIFT_DATABASE_URL"])
    try:
        with running_dagster_dev(tmp_path, env) as dev:
            query_workspace(dev)
            shutil.copyfile(SAMPLE, dev.data_dir / "uploads" / SAMPLE.name)
            deadline = time.monotonic() + DEADLINE_S
            wrote, texts = set(), set()
            while time.monotonic() < deadline:
                wrote, texts = texts_of_the_sample(engine)
                if wrote and texts == {(business, kind) for business in wrote for kind in KINDS}:
                    break
                time.sleep(1)
            else:
                pytest.fail(f"{len(texts)} of {2 * len(wrote)} texts for the {len(wrote)} businesses of "
                            f"{SAMPLE.name} within {DEADLINE_S} s:\n{dev.log_tail()}")
        with engine.connect() as conn:
            charged = set(conn.execute(sa.select(accounts.c.slug).join(
                ai_requests, ai_requests.c.account_id == accounts.c.id)).scalars())
            statuses = set(conn.execute(sa.select(ai_requests.c.status)).scalars())
        assert charged == {"demo"} and statuses == {"completed"}
    finally:
        engine.dispose()
