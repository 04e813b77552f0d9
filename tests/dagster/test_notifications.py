"""The notifications domain in Dagster: the sweep job in process (sandbox and a local WaChap server),
the outbox sensor's ticks, the backstop schedule, and secrets kept out of run config."""

import dagster as dg
import sqlalchemy as sa
from dagster._core.test_utils import create_run_for_test

from nightshift.config import load_settings
from nightshift.db.schema import notifications
from nightshift.notifications.outbox import enqueue
from pipelines.jobs.notifications import notification_sweep
from resources.whatsapp import WhatsAppProvider, whatsapp_provider
from sensors.notifications import outbox_sensor
from tests.conftest import app_resources, definitions
from tests.notifications.fake_provider import FakeProvider, status


def resources(url, **provider):
    shared = app_resources(url)
    return {**shared, "whatsapp": WhatsAppProvider(settings=shared["settings"], **provider)}


def queue(engine, n=3, **request):
    settings = load_settings().notifications
    return [enqueue(engine, settings, source_app="cargo", to="70 12 34 56", body=f"colis {i}",
                    message_type="colis_status", **request).id for i in range(n)]


def statuses(engine):
    with engine.connect() as conn:
        return [r.status for r in conn.execute(sa.select(notifications.c.status).order_by(notifications.c.id))]


def test_definitions_hold_the_job_the_running_sensor_and_the_5_min_schedule(env):
    defs = definitions()
    assert defs.resolve_job_def("notification_sweep").tags["nightshift/family"] == "sweeps"
    sensor = defs.resolve_sensor_def("outbox_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    schedule = defs.resolve_schedule_def("notification_sweep_every_5_min")
    assert schedule.cron_schedule == "*/5 * * * *" and schedule.default_status == dg.DefaultScheduleStatus.RUNNING


def test_sweep_job_in_sandbox_says_nothing_left_the_machine(env):
    queue(env["engine"], 3)
    with dg.instance_for_test() as instance:
        result = notification_sweep.execute_in_process(instance=instance, resources=resources(env["url"]))
    assert result.success
    assert statuses(env["engine"]) == ["sent"] * 3
    [summary] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT" and e.step_key == "sweep_summary"]
    metadata = summary.event_specific_data.metadata
    assert metadata["sent"].value == 3 and metadata["claimed"].value == 3
    assert "nothing left this machine" in metadata["provider"].value


def test_sweep_job_through_wachap_counts_each_outcome(env):
    server = FakeProvider("wachap")
    server.then(status(503))
    try:
        queue(env["engine"], 3)
        with dg.instance_for_test() as instance:
            result = notification_sweep.execute_in_process(
                instance=instance, resources=resources(env["url"], provider="wachap", wachap_base_url=server.url,
                                                       wachap_api_key="secret-key", wachap_account_id="acc"))
    finally:
        server.close()
    assert result.success
    output = result.output_for_node("sweep_summary")
    assert (output["sent"], output["temporary"]) == (2, 1)
    assert sorted(statuses(env["engine"])) == ["failed_retry", "sent", "sent"]
    assert "secret-key" not in str(result.dagster_run.run_config)


def test_a_provider_without_its_key_fails_clearly(env):
    queue(env["engine"], 1)
    with dg.instance_for_test() as instance:
        result = notification_sweep.execute_in_process(instance=instance, raise_on_error=False,
                                                       resources=resources(env["url"], provider="meta"))
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.event_specific_data.error.message
    assert "NIGHTSHIFT_META_TOKEN, NIGHTSHIFT_META_PHONE_NUMBER_ID: not set" in message
    assert statuses(env["engine"]) == ["pending"]


def test_secrets_come_from_the_environment_as_env_vars(env):
    settings = load_settings()
    provider = whatsapp_provider(settings, {"NIGHTSHIFT_WHATSAPP_PROVIDER": "wachap",
                                            "NIGHTSHIFT_WACHAP_API_KEY": "k-123"})
    assert isinstance(provider.wachap_api_key, dg.EnvVar) and provider.wachap_api_key.env_var_name \
        == "NIGHTSHIFT_WACHAP_API_KEY"
    assert whatsapp_provider(settings, {}).provider == "sandbox"


def test_outbox_sensor_skips_with_the_backlog_or_requests_a_sweep(env):
    with dg.instance_for_test() as instance:
        def tick():
            with dg.build_sensor_context(instance=instance, resources=resources(env["url"])) as context:
                return outbox_sensor(context)

        assert tick().skip_message == "no due notifications"
        queue(env["engine"], 2)
        request = tick()
        assert isinstance(request, dg.RunRequest) and request.tags["nightshift/family"] == "sweeps"
        create_run_for_test(instance, job_name="notification_sweep", status=dg.DagsterRunStatus.STARTED)
        skipped = tick()
        assert "2 due notification(s), the oldest due for" in skipped.skip_message
        assert "a sweep is already queued or running" in skipped.skip_message
