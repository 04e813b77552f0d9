"""`nightshift alerts test|list` as users run them, against a real SMTP server (aiosmtpd)."""

import json

from nightshift.db import migrate
from tests.conftest import nightshift
from tests.notifications.smtp_server import SmtpServer


def test_test_alert_by_email_then_listed(cli_env, db_url, tmp_path):
    migrate.upgrade(db_url)
    missing = nightshift("alerts", "test", "--channel", "email", env=cli_env, cwd=tmp_path)
    assert missing.returncode == 1 and "no email channel: set NIGHTSHIFT_SMTP_HOST" in missing.stderr
    smtp = SmtpServer()
    try:
        env = {**cli_env, "NIGHTSHIFT_SMTP_HOST": "127.0.0.1", "NIGHTSHIFT_SMTP_PORT": str(smtp.port),
               "NIGHTSHIFT_SMTP_TO": "admin@example.org", "NIGHTSHIFT_SMTP_PASSWORD": "hunter2-secret"}
        sent = nightshift("alerts", "test", "--channel", "email", "--json", env=env, cwd=tmp_path)
        assert sent.returncode == 0, sent.stderr
        assert "hunter2-secret" not in sent.stdout + sent.stderr
    finally:
        smtp.close()
    assert smtp.subjects == ["[nightshift] INFO: test alert through email, sent on purpose"]
    listed = json.loads(nightshift("alerts", "list", "--json", env=cli_env, cwd=tmp_path).stdout)["alerts"]
    assert [(a["severity"], a["channels"]) for a in listed] == [("info", "email")]
    assert nightshift("alerts", "list", "--since", "2026-13-01", env=cli_env, cwd=tmp_path).returncode == 2
    human = nightshift("alerts", "list", "--since", "2020-01-01", env=cli_env, cwd=tmp_path)
    assert "test alert through email" in human.stdout and "via email" in human.stdout
