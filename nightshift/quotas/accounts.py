"""Accounts: who owns imports and consumes tokens, with a monthly token quota and a rollover policy.

An account is named by its slug (lower-case letters, digits, `-`, `_`): the name the CLI's `--account`
and the upload folder `uploads/<account>/<profile>/` use.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from nightshift.config import PHONE_REGION, is_phone_region
from nightshift.db.engine import read_transaction, write_transaction
from nightshift.db.schema import accounts

SLUG = re.compile(r"[a-z0-9][a-z0-9_-]{0,99}")
ROLLOVER_POLICIES = ("none", "full", "capped:N")


class AccountError(ValueError):
    """A bad account name, quota, rollover policy or region, or an unknown account: the message says
    which and what to do."""


@dataclass(frozen=True)
class Rollover:
    """What a month's unused tokens become: `none` (they expire), `full` (all carried over) or
    `capped:N` (at most N carried)."""

    policy: str
    cap: int | None = None

    @classmethod
    def parse(cls, text: str) -> Rollover:
        value = text.strip().lower()
        if value in ("none", "full"):
            return cls(value)
        if value.startswith("capped:") and value[7:].isdigit():
            return cls("capped", int(value[7:]))
        raise AccountError(f"rollover {text!r}: use one of {', '.join(ROLLOVER_POLICIES)} "
                           "(N: tokens, e.g. capped:50000)")

    def __str__(self) -> str:
        return f"capped:{self.cap}" if self.policy == "capped" else self.policy


def _slug(name: str) -> str:
    if not SLUG.fullmatch(name):
        raise AccountError(f"account name {name!r}: use lower-case letters, digits, '-' or '_' (at most 100), "
                           "starting with a letter or digit, e.g. fox-reviews")
    return name


def _quota(quota: int) -> int:
    if quota < 0:
        raise AccountError(f"quota {quota}: a monthly token quota is 0 or more tokens")
    return quota


def _region(region: str | None) -> str | None:
    if region is None:
        return None
    code = region.strip().upper()
    if not is_phone_region(code):
        raise AccountError(f"phone region {region!r}: not {PHONE_REGION}")
    return code


def _as_dict(row: sa.Row) -> dict[str, Any]:
    return {"account": row.slug, "name": row.name, "monthly_token_quota": row.monthly_token_quota,
            "rollover": row.rollover, "phone_region": row.phone_region, "active": bool(row.active)}


def _select() -> sa.Select:
    return sa.select(accounts.c.slug, accounts.c.name, accounts.c.monthly_token_quota, accounts.c.rollover,
                     accounts.c.phone_region, accounts.c.active)


def add_account(engine: Engine, name: str, quota: int, rollover: Rollover = Rollover("none"),
                phone_region: str | None = None, display_name: str | None = None) -> dict[str, Any]:
    values = {"slug": _slug(name), "name": display_name or name, "monthly_token_quota": _quota(quota),
              "rollover": str(rollover), "phone_region": _region(phone_region)}
    try:
        with write_transaction(engine) as conn:
            conn.execute(accounts.insert().values(**values))
            return _as_dict(conn.execute(_select().where(accounts.c.slug == name)).one())
    except sa.exc.IntegrityError:  # the unique slug: also between two adds at once
        raise AccountError(f"account {name!r} exists already: change its quota with "
                           "`nightshift accounts set-quota`") from None


def _update(engine: Engine, name: str, **values: Any) -> dict[str, Any]:
    with write_transaction(engine) as conn:
        changed = conn.execute(accounts.update().where(accounts.c.slug == name)
                               .values(**values, updated_at=sa.func.current_timestamp())).rowcount
        if not changed:
            raise AccountError(f"no account {name!r}: `nightshift accounts list` shows them")
        return _as_dict(conn.execute(_select().where(accounts.c.slug == name)).one())


def set_quota(engine: Engine, name: str, quota: int) -> dict[str, Any]:
    """The monthly quota from the next period on (an open period keeps the grant it was opened with)."""
    return _update(engine, name, monthly_token_quota=_quota(quota))


def deactivate(engine: Engine, name: str) -> dict[str, Any]:
    """An inactive account gets no new period; its rows and ledger stay."""
    return _update(engine, name, active=False)


def list_accounts(engine: Engine) -> list[dict[str, Any]]:
    with read_transaction(engine) as conn:
        return [_as_dict(row) for row in conn.execute(_select().order_by(accounts.c.slug))]
