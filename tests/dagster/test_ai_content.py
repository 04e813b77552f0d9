"""The ai domain in Dagster on SQLite and PostgreSQL: ai_content materialised for a real import (through the
local OpenAI-compatible server and the offline template generator), re-materialised without a new charge,
one changed row → one generation, quota waits resumed by a top-up through ai_retry, and the sensors."""

import os
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from assets.ai import ai_content
from assets.imports import import_batch
from nightshift.config import load_settings
from nightshift.db.engine import write_transaction
from nightshift.db.schema import accounts, ai_contents, ai_requests, token_ledger
from nightshift.imports import intake
from nightshift.quotas import TokenLedger
from nightshift.quotas.accounts import add_account
from resources.ai import AIProvider
from sensors.ai import ai_import_sensor, ai_requests_sensor
from tests.ai.fake_openai import FakeOpenAI
from tests.conftest import app_resources, definitions

HEADER = "siren;nom;code_postal;ville_nom;naf_libelle\n"
ROWS = ["732829320;Boulangerie Dupont;75002;Paris;Boulangerie et boulangerie-pâtisserie",
        "552100554;Garage Martin;01000;Bourg-en-Bresse;Entretien et réparation de véhicules automobiles",
        "443061841;Galerie Lefèvre;69005;Lyon;Commerce de détail d'objets d'art"]


@pytest.fixture(autouse=True)
def fast_limits(env):
    """The tests' provider answers at once: no pacing at the old system's 5 requests a minute."""
    Path(os.environ["NIGHTSHIFT_CONFIG"]).write_text("ai:\n  requests_per_minute: 60000\n  tokens_per_minute: "
                                                      "100000000\n", encoding="utf-8")


def account_of(env, slug: str = "fox", quota: int = 1_000_000) -> int:
    add_account(env["engine"], slug, quota)
    with env["engine"].connect() as conn:
        return conn.execute(sa.select(accounts.c.id).where(accounts.c.slug == slug)).scalar_one()


def imported(env, instance, name: str, rows: list[str], account_id: int, header: str = HEADER) -> str:
    """Import a file (businesses unless `header` says otherwise) through import_batch, as the upload
    sensor's run does: its partition key."""
    path = env["uploads"] / name
    path.write_text(header + "\n".join(rows) + "\n", encoding="utf-8")
    registered = intake.register(env["engine"], intake.Upload(path, None, None), load_settings(),
                                 detect_duplicates=False, account_id=account_id)
    instance.add_dynamic_partitions("import_files", [registered.partition_key])
    result = dg.materialize([import_batch], instance=instance, partition_key=registered.partition_key,
                            resources=app_resources(env["url"]))
    assert result.success
    return registered.partition_key


def resources(env, server: FakeOpenAI | None = None) -> dict:
    shared = app_resources(env["url"])
    provider = (AIProvider(settings=shared["settings"], base_url=server.base_url, model="test-model")
                if server else AIProvider(settings=shared["settings"]))
    return {**shared, "ai": provider}


def generate(env, instance, partition_key: str, server: FakeOpenAI | None = None) -> dict:
    result = dg.materialize([ai_content], instance=instance, partition_key=partition_key,
                            resources=resources(env, server))
    assert result.success
    [event] = result.asset_materializations_for_node("ai_content")
    return {key: getattr(value, "value", value) for key, value in event.metadata.items()}


def ledger_count(env) -> int:
    with env["engine"].connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(token_ledger)
                            .where(token_ledger.c.entry_kind != "grant")).scalar_one()


def test_an_import_gets_its_texts_and_a_second_materialisation_charges_nothing(env):
    account = account_of(env)
    with FakeOpenAI() as server, dg.instance_for_test() as instance:
        partition = imported(env, instance, "entreprises.csv", ROWS, account)
        first = generate(env, instance, partition, server)
        assert (first["requested"], first["generated"], first["failed"]) == (6, 6, 0)
        assert first["tokens_settled"] > 0 and first["language_model"] is True
        assert len(server.requests) == 6
        charged = ledger_count(env)
        assert charged == 12  # one reserve and one settle per text
        again = generate(env, instance, partition, server)
        assert (again["skipped_unchanged"], again["requested"], again["tokens_reserved"]) == (6, 0, 0)
        assert len(server.requests) == 6 and ledger_count(env) == charged


def test_one_changed_row_in_a_new_import_is_one_new_generation(env):
    account = account_of(env)
    with FakeOpenAI() as server, dg.instance_for_test() as instance:
        generate(env, instance, imported(env, instance, "entreprises.csv", ROWS, account), server)
        changed = [ROWS[0].replace("Paris", "Paris 2e"), *ROWS[1:]]
        second = imported(env, instance, "entreprises_v2.csv", changed, account)
        metadata = generate(env, instance, second, server)
        assert (metadata["requested"], metadata["generated"]) == (2, 2)  # one business, its two kinds
        assert len(server.requests) == 8


def test_the_template_generator_says_it_is_not_a_language_model(env):
    account = account_of(env)
    with dg.instance_for_test() as instance:
        metadata = generate(env, instance, imported(env, instance, "entreprises.csv", ROWS, account))
        assert metadata["generated"] == 6 and metadata["language_model"] is False
        assert "NOT a language model" in metadata["provider"] and "Ollama" in metadata["provider"]
        assert metadata["estimated_token_share"] == 1.0
    with env["engine"].connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(ai_contents)).scalar_one() == 6


def test_exhausted_quota_makes_rows_wait_and_a_top_up_resumes_them_through_ai_retry(env, monkeypatch):
    account = account_of(env, "small", 50)
    with FakeOpenAI() as server:
        monkeypatch.setenv("NIGHTSHIFT_AI_BASE_URL", server.base_url)
        monkeypatch.setenv("NIGHTSHIFT_AI_MODEL", "test-model")
        with dg.instance_for_test() as instance:
            waiting = generate(env, instance, imported(env, instance, "entreprises.csv", ROWS, account), server)
            assert (waiting["waiting_quota"], waiting["generated"], len(server.requests)) == (6, 0, 0)
            TokenLedger(env["engine"], load_settings().quotas, load_settings().tz).grant("small", 100_000, "top-up")
            with write_transaction(env["engine"]) as conn:  # the quota recheck is due
                conn.execute(ai_requests.update().values(next_attempt_at=sa.func.current_timestamp()))
            with dg.build_sensor_context(instance=instance, resources=app_resources(env["url"])) as context:
                request = ai_requests_sensor(load_settings())(context)
            assert request.run_config == {"ops": {"generate_ai_content": {"config": {"retry_due": True}}}}
            result = definitions().resolve_job_def("ai_retry").execute_in_process(
                instance=instance, run_config=request.run_config)
            assert result.success
            [output] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
            metadata = {k: getattr(v, "value", v) for k, v in output.event_specific_data.metadata.items()}
            assert (metadata["generated"], metadata["waiting_quota"]) == (6, 0)
            assert len(server.requests) == 6
            with dg.build_sensor_context(instance=instance, resources=app_resources(env["url"])) as context:
                assert isinstance(ai_requests_sensor(load_settings())(context), dg.SkipReason)


def test_the_import_sensor_requests_one_run_per_import_with_new_or_changed_businesses(env):
    account = account_of(env)
    job = definitions().resolve_job_def("ai_content_job")
    with dg.instance_for_test() as instance:
        partition = imported(env, instance, "entreprises.csv", ROWS, account)
        imported(env, instance, "same_rows.csv", ROWS, account)  # nothing inserted or updated
        imported(env, instance, "clients.csv", ["+22376000001;Awa;Traoré"], account,
                 header="telephone;prenom;nom\n")  # clients: rows inserted, but no text describes them
        with dg.build_sensor_context(instance=instance, resources=app_resources(env["url"])) as context:
            result = ai_import_sensor(job, load_settings())(context)
        [request] = result.run_requests
        assert request.partition_key == partition and request.run_key.startswith("ai_content:")
        with dg.build_sensor_context(instance=instance, cursor=result.cursor,
                                     resources=app_resources(env["url"])) as context:
            again = ai_import_sensor(job, load_settings())(context)
        # The look-back sees the same import again; its run_key is the same, so Dagster starts no second run.
        assert [r.run_key for r in again.run_requests] == [request.run_key]


def test_the_ai_objects_are_declared_as_the_issue_asks():
    defs = definitions()
    repository = defs.get_repository_def()
    spec = defs.resolve_assets_def("ai_content")
    [key] = spec.keys
    assert spec.group_names_by_key[key] == "ai"
    assert spec.partitions_def.name == "import_files"
    assert spec.op.pool == "ai"
    assert ai_content.op.retry_policy.max_retries == 2 and ai_content.op.retry_policy.delay == 60
    for name in ("ai_content_job", "ai_regeneration", "ai_retry"):
        tags = defs.resolve_job_def(name).tags
        assert tags["nightshift/family"] == "ai" and tags["dagster/max_runtime"] == "3600"
    for name in ("ai_import_sensor", "ai_requests_sensor"):
        assert repository.get_sensor_def(name).default_status == dg.DefaultSensorStatus.RUNNING
    schedule = repository.get_schedule_def("ai_regeneration_nightly")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("0 2 * * *", load_settings().timezone)


def test_the_nightly_regeneration_takes_older_template_contents_within_its_budget(env):
    account = account_of(env)
    with dg.instance_for_test() as instance:
        generate(env, instance, imported(env, instance, "entreprises.csv", ROWS, account))
        with write_transaction(env["engine"]) as conn:
            oldest = conn.execute(sa.select(sa.func.min(ai_contents.c.business_id))).scalar_one()
            conn.execute(ai_contents.update().where(ai_contents.c.business_id == oldest).values(template_version="v0"))
        schedule = definitions().get_repository_def().get_schedule_def("ai_regeneration_nightly")
        run_config = schedule.evaluate_tick(dg.build_schedule_context()).run_requests[0].run_config
        assert run_config["ops"]["generate_ai_content"]["config"] == {"stale": True, "token_budget": 50_000}
        job = definitions().resolve_job_def("ai_regeneration")

        def regenerate(config: dict) -> dict:
            result = job.execute_in_process(instance=instance, run_config=config)
            [output] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
            return {k: getattr(v, "value", v) for k, v in output.event_specific_data.metadata.items()}

        metadata = regenerate(run_config)
        assert (metadata["requested"], metadata["generated"], metadata["cached"]) == (2, 2, 0)
        assert regenerate(run_config)["requested"] == 0  # regenerated: no longer stale
        # The next import of the same rows sees the regenerated texts as unchanged.
        after = regenerate({"ops": {"generate_ai_content": {"config": {"business_ids": [oldest]}}}})
        assert (after["skipped_unchanged"], after["requested"]) == (2, 0)
        with write_transaction(env["engine"]) as conn:
            conn.execute(ai_contents.update().where(ai_contents.c.business_id == oldest).values(template_version="v0"))
        tight = regenerate({"ops": {"generate_ai_content": {"config": {"stale": True, "token_budget": 1}}}})
        assert (tight["deferred_budget"], tight["generated"], tight["tokens_reserved"]) == (2, 0, 0)


def test_an_abandoned_request_starts_ai_retry_which_times_it_out_and_ends_its_hold(env):
    from datetime import UTC, datetime, timedelta

    from nightshift.ai import states

    account = account_of(env)
    with dg.instance_for_test() as instance:
        imported(env, instance, "entreprises.csv", ROWS[:1], account)
        with env["engine"].connect() as conn:
            business = conn.execute(sa.text("SELECT min(id) FROM businesses")).scalar_one()
        request = states.open_request(env["engine"], account_id=account, business_id=business, kind="description",
                                      prompt_hash="old-prompt", model="m", template_version="v1", estimate=400,
                                      import_id=1)
        claim = states.claim(env["engine"], request["id"], lease_seconds=1, max_attempts=3,
                             now=datetime.now(UTC) - timedelta(minutes=5))
        hold = TokenLedger(env["engine"], load_settings().quotas, load_settings().tz).reserve("fox", 400, "killed")
        states.record(env["engine"], claim, reservation_id=hold.reservation_id)
        sensor = ai_requests_sensor(load_settings())
        with dg.build_sensor_context(instance=instance, resources=app_resources(env["url"])) as context:
            request_run = sensor(context)
        assert request_run.tags["nightshift/ai_abandoned"] == "1"
        result = definitions().resolve_job_def("ai_retry").execute_in_process(
            instance=instance, run_config=request_run.run_config)
        [output] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
        assert output.event_specific_data.metadata["timed_out"].value == 1
    with env["engine"].connect() as conn:
        status = conn.execute(sa.select(ai_requests.c.status).where(ai_requests.c.id == request["id"])).scalar_one()
        endings = conn.execute(sa.select(token_ledger.c.entry_kind).where(
            token_ledger.c.reservation_id == hold.reservation_id)).scalars().all()
    assert status == "timeout" and endings == ["release"]  # the call had not started: nothing was billed
