"""`nightshift notify stats`: one app's figures count only its rows; without --app, every app and account."""

import json

from nightshift.db import migrate
from nightshift.db.engine import create_engine
from nightshift.notifications import sweep
from nightshift.notifications.outbox import enqueue
from nightshift.notifications.providers import SandboxBackend
from tests.conftest import nightshift
from tests.notifications.fake_provider import fast_settings


def test_stats_per_app_and_for_the_admin(cli_env, db_url, tmp_path):
    migrate.upgrade(db_url)
    engine = create_engine(db_url)
    settings = fast_settings()
    for app, count in (("cargo", 3), ("shop", 1)):
        for i in range(count):
            enqueue(engine, settings, source_app=app, to=f"+223701234{i}{len(app)}", body="x", message_type="system")
    sweep.run_sweep(engine, settings, SandboxBackend())
    enqueue(engine, settings, source_app="shop", to="+22370999998", body="later", message_type="system")
    engine.dispose()

    shop = nightshift("notify", "stats", "--app", "shop", "--hours", "2", "--json", env=cli_env, cwd=tmp_path)
    assert shop.returncode == 0, shop.stderr
    figures = json.loads(shop.stdout)
    assert (figures["app"], figures["hours"], figures["attempts"], figures["sent"]) == ("shop", 2, 1, 1)
    assert figures["backlog"] == 1 and "apps" not in figures
    admin = json.loads(nightshift("notify", "stats", "--json", env=cli_env, cwd=tmp_path).stdout)
    assert (admin["app"], admin["attempts"], admin["backlog"]) == (None, 4, 1)
    assert {name: f["sent"] for name, f in admin["apps"].items()} == {"cargo": 3, "shop": 1}
    human = nightshift("notify", "stats", "--app", "cargo", env=cli_env, cwd=tmp_path)
    assert human.returncode == 0 and human.stdout.startswith("last 24 h — cargo: 3 attempts, 3 sent")
    assert nightshift("notify", "stats", "--hours", "0", env=cli_env, cwd=tmp_path).returncode == 2
