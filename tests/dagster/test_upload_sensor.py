"""upload_sensor on real folders: which re-uploads of the same bytes are duplicates, and partition keys
that name one registered import each."""

from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from assets.imports import import_batch
from nightshift.config import load_settings
from nightshift.db.schema import accounts, clients, imports
from nightshift.imports import log as import_log
from nightshift.imports.files import PARTITION_KEY_MAX
from sensors.imports import upload_sensor
from tests.conftest import app_resources

CLIENTS = "telephone;prenom;nom\n70 12 34 56;Awa;Traoré\n+223 76 00 00 01;Moussa;Keïta\n"
CITIES = "nom;code_postal\nBourg-en-Bresse;01000\nLyon;69001\n"
GARBAGE = bytes(range(256)) * 64


def tick(instance, cursor, url):
    with dg.build_sensor_context(instance=instance, cursor=cursor,
                                 resources=app_resources(url)) as context:
        return upload_sensor(load_settings())(context)


def settle(instance, url):
    """Two ticks: the first sees the files, the second (sizes unchanged) registers them."""
    return tick(instance, tick(instance, None, url).cursor, url)


def drop(folder: Path, name: str, content: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(content, encoding="utf-8")
    return path


def run_partition(env, instance, result, request):
    """What the daemon does with a tick's result: add its partitions, then launch the request."""
    for add in result.dynamic_partitions_requests:
        instance.add_dynamic_partitions(add.partitions_def_name, add.partition_keys)
    return dg.materialize([import_batch], instance=instance, partition_key=request.partition_key,
                          tags=request.tags, resources=app_resources(env["url"]), raise_on_error=False)


def all_imports(engine) -> list:
    with engine.connect() as conn:
        return conn.execute(sa.select(imports).order_by(imports.c.id)).all()


@pytest.mark.parametrize("suggestion", ["create the account", "move to uploads/<profile>/"])
def test_reupload_after_an_unknown_account_folder_is_imported(env, suggestion):
    """Import 1 was rejected at intake (it never ran): following its message is not a `duplicate`."""
    drop(env["uploads"] / "acme" / "clients", "c.csv", CLIENTS)
    with dg.instance_for_test() as instance:
        rejected = settle(instance, env["url"])
        assert rejected.run_requests == []
        [first] = all_imports(env["engine"])
        assert (first.status, first.dagster_run_id) == ("failed", None)
        assert "dossier de compte inconnu « acme »" in first.message  # NIGHTSHIFT_LANG: fr by default

        if suggestion == "create the account":
            with env["engine"].begin() as conn:
                conn.execute(accounts.insert().values(slug="acme", name="Acme"))
            drop(env["uploads"] / "acme" / "clients", "c.csv", CLIENTS)
        else:
            drop(env["uploads"] / "clients", "c.csv", CLIENTS)
        result = settle(instance, env["url"])
        [request] = result.run_requests
        # Import 1 never had a run: the plain content run key is still free for Dagster's dedupe.
        assert request.run_key == f"{first.sha256}:clients:1"
        run = run_partition(env, instance, result, request)
        assert run.success
    second = all_imports(env["engine"])[1]
    assert (second.status, second.duplicate_of_id, second.partition_key) == ("succeeded", None,
                                                                             request.partition_key)
    assert request.tags["nightshift/import_id"] == str(second.id)
    with env["engine"].connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(clients)).scalar_one() == 2


def test_reupload_after_a_failed_run_is_a_duplicate_that_says_how_to_retry(env):
    """Same bytes fail the same way: the re-upload points at the failed import and its partition, which a
    manual re-execution (or a fixed upload) retries."""
    (env["uploads"] / "garbage.csv").write_bytes(GARBAGE)
    with dg.instance_for_test() as instance:
        result = settle(instance, env["url"])
        [request] = result.run_requests
        assert not run_partition(env, instance, result, request).success
        (env["uploads"] / "garbage (2).csv").write_bytes(GARBAGE)
        assert settle(instance, env["url"]).run_requests == []
    failed, duplicate = all_imports(env["engine"])
    assert (failed.status, failed.failure_kind) == ("failed", "bad_input")
    assert (duplicate.status, duplicate.duplicate_of_id) == ("duplicate", failed.id)
    assert f"même contenu que l'import {failed.id} (garbage.csv, failed)" in duplicate.message
    assert request.partition_key in duplicate.message and "ré-exécutez" in duplicate.message
    assert duplicate.partition_key is None, "a duplicate has no partition of its own"


def test_reupload_of_a_registered_file_that_was_deleted_before_its_run_is_imported(env):
    """Import 1 can never run (its file is gone; its run tells the user to upload it again): the new
    upload is imported, under a run key Dagster has not seen (the first one was used by import 1)."""
    path = drop(env["uploads"] / "cities", "villes.csv", CITIES)
    with dg.instance_for_test() as instance:
        [lost] = settle(instance, env["url"]).run_requests
        path.unlink()
        drop(env["uploads"] / "cities", "villes-bis.csv", CITIES)
        result = settle(instance, env["url"])
        [request] = result.run_requests
        assert request.run_key != lost.run_key and request.partition_key != lost.partition_key
        assert run_partition(env, instance, result, request).success
    first, second = all_imports(env["engine"])
    assert (first.status, second.status, second.duplicate_of_id) == ("received", "succeeded", None)


def test_same_bytes_at_the_top_and_in_a_profile_folder_get_their_own_partitions(env):
    """Detected profile (top of uploads/) and cities/ are two imports: two partitions, each run imports its
    own file, and the keys stay those of their imports after the runs."""
    drop(env["uploads"], "villes.csv", CITIES)
    drop(env["uploads"] / "cities", "villes.csv", CITIES)
    with dg.instance_for_test() as instance:
        result = settle(instance, env["url"])
        requests = result.run_requests
        assert len(requests) == 2
        keys = [r.partition_key for r in requests]
        assert len(set(keys)) == 2 and all(k.startswith("villes-") for k in keys)
        [add] = result.dynamic_partitions_requests
        assert add.partition_keys == sorted(keys)
        for request in requests:
            row = import_log.by_partition(env["engine"], request.partition_key)
            assert str(row["id"]) == request.tags["nightshift/import_id"]
            assert run_partition(env, instance, result, request).success
    rows = all_imports(env["engine"])
    assert [(r.status, r.profile, r.partition_key) for r in rows] == [
        ("succeeded", "cities", requests[0].partition_key), ("succeeded", "cities", requests[1].partition_key)]
    assert [r.id for r in rows] == sorted(int(r.tags["nightshift/import_id"]) for r in requests)


def test_partition_keys_are_bounded_readable_and_without_commas(env):
    name = "Liste, des villes d'été " + "très longue " * 15 + ".csv"
    drop(env["uploads"] / "cities", name, CITIES)
    with dg.instance_for_test() as instance:
        [request] = settle(instance, env["url"]).run_requests
    key = request.partition_key
    assert len(key) <= PARTITION_KEY_MAX and "," not in key
    assert key.startswith("Liste_des_villes_d_ete_tres_longue_")
    assert import_log.by_partition(env["engine"], key)["file_name"] == name
