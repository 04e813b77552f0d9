"""The welcome message of new clients through the imports' hook: only for an account that opted in,
once per client even when the file is imported again, nothing for a dry run."""

import sqlalchemy as sa

from nightshift.config import load_settings
from nightshift.db.schema import accounts, clients, imports, notifications
from nightshift.imports import hooks
from nightshift.imports.service import ImportOptions, run_import
from pipelines.definitions.notifications import register_welcome

CLIENTS = "telephone;prenom;nom\n70 12 34 56;Awa;Traoré\n+223 76 00 00 01;Moussa;Keïta\n"


def settings_for(tmp_path, db, yaml_text):
    config = tmp_path / "nightshift.yaml"
    config.write_text(yaml_text, encoding="utf-8")
    settings = load_settings({"NIGHTSHIFT_DATABASE_URL": db.url.render_as_string(hide_password=False),
                              "NIGHTSHIFT_DATA_DIR": str(tmp_path / "data"), "NIGHTSHIFT_CONFIG": str(config)})
    settings.ensure_data_dirs()
    return settings


def account(db, slug):
    with db.begin() as conn:
        return conn.execute(accounts.insert().values(slug=slug, name=slug).returning(accounts.c.id)).scalar_one()


def import_file(db, path, settings, account_id, dry_run=False):
    """As the import job runs it: the import log row names the account, then the import runs."""
    with db.begin() as conn:
        import_id = conn.execute(imports.insert().values(
            file_name=path.name, sha256="x", size_bytes=1, status="received", stage="received", account_id=account_id,
            dry_run=dry_run).returning(imports.c.id)).scalar_one()
    run_import(db, path, settings, ImportOptions(profile="clients", account_id=account_id, dry_run=dry_run),
               import_id=import_id, move_file=False)


def outbox(db):
    with db.connect() as conn:
        return conn.execute(sa.select(notifications).order_by(notifications.c.id)).all()


def test_welcome_once_per_new_client_of_an_opted_in_account(db, tmp_path, monkeypatch):
    monkeypatch.setattr(hooks, "NEW_CLIENT_HOOKS", [])
    settings = settings_for(tmp_path, db, 'notifications:\n  welcome:\n    acme:\n'
                                          '      template: "Bienvenue {first_name} chez {account} !"\n')
    register_welcome(settings)
    register_welcome(settings)  # a second build of the definitions replaces, never adds
    assert len(hooks.NEW_CLIENT_HOOKS) == 1
    acme, other = account(db, "acme"), account(db, "other")
    path = tmp_path / "clients.csv"
    path.write_text(CLIENTS, encoding="utf-8")

    import_file(db, path, settings, acme, dry_run=True)
    assert outbox(db) == []  # a dry run enqueues nothing

    import_file(db, path, settings, acme)
    rows = outbox(db)
    assert [(r.recipient, r.body, r.idempotency_key, r.message_type) for r in rows] == [
        ("+22370123456", "Bienvenue Awa chez acme !", "welcome:acme:+22370123456", "account"),
        ("+22376000001", "Bienvenue Moussa chez acme !", "welcome:acme:+22376000001", "account"),
    ]
    with db.connect() as conn:
        phones = dict(conn.execute(sa.select(clients.c.id, clients.c.phone)).all())
    assert [phones[r.client_id] for r in rows] == [r.recipient for r in rows]

    import_file(db, path, settings, acme)
    assert len(outbox(db)) == 2  # a re-import sends nothing again

    other_file = tmp_path / "others.csv"
    other_file.write_text("telephone;prenom\n+223 76 00 00 02;Fanta\n", encoding="utf-8")
    import_file(db, other_file, settings, other)
    assert len(outbox(db)) == 2  # "other" did not opt in


def test_welcome_is_off_by_default(db, tmp_path, monkeypatch):
    monkeypatch.setattr(hooks, "NEW_CLIENT_HOOKS", [])
    register_welcome(settings_for(tmp_path, db, "{}\n"))
    assert hooks.NEW_CLIENT_HOOKS == []
