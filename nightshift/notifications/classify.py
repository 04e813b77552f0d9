"""The one classifier of send outcomes: provider error code first, HTTP status second.

The code tables of the Meta Cloud API and of WaChap are data: each row says what kind of failure a code
is. Meta sends throttling codes with HTTP 400, so the status alone would make a retryable error final.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Outcome(StrEnum):
    SENT = "sent"
    TEMPORARY = "temporary"  # retry later
    PERMANENT = "permanent"  # this message will never go: final
    ACCOUNT = "account"  # the provider account is broken (auth, policy, spam): open its breaker
    AMBIGUOUS = "ambiguous"  # the request may have reached the provider: never blindly re-send


class Transport(StrEnum):
    """How the HTTP exchange ended when no response was read."""

    CONNECT_FAILED = "connect_failed"  # no connection: the request provably never left
    READ_TIMEOUT = "read_timeout"  # the request was sent, no answer in time
    RESET_AFTER_SEND = "reset_after_send"  # the connection broke after the body was sent


@dataclass(frozen=True)
class Rule:
    outcome: Outcome
    # The earliest retry, whatever the backoff policy says (Meta 131049: deferred ≥ 24 h).
    floor_seconds: float = 0.0
    # Meta 131056 (pair rate): wait 4^(n-1) s on attempt n (1, 4, 16, 64, 256).
    pair_rate: bool = False
    meaning: str = ""


META_CODES: dict[str, Rule] = {
    "130429": Rule(Outcome.TEMPORARY, meaning="throughput limit reached"),
    "131056": Rule(Outcome.TEMPORARY, pair_rate=True, meaning="too many messages to this recipient"),
    "131000": Rule(Outcome.TEMPORARY, meaning="something went wrong (service)"),
    "131001": Rule(Outcome.TEMPORARY, meaning="message too big or service error"),
    "131002": Rule(Outcome.TEMPORARY, meaning="service error"),
    "4": Rule(Outcome.TEMPORARY, meaning="application request limit"),
    "80007": Rule(Outcome.TEMPORARY, meaning="WhatsApp Business account rate limit"),
    "131049": Rule(Outcome.TEMPORARY, floor_seconds=24 * 3600, meaning="deferred by Meta to keep engagement"),
    "131026": Rule(Outcome.PERMANENT, meaning="message undeliverable to this recipient"),
    "131047": Rule(Outcome.PERMANENT, meaning="outside the 24 h window: a template is needed"),
    "100": Rule(Outcome.PERMANENT, meaning="invalid parameter"),
    "131008": Rule(Outcome.PERMANENT, meaning="required parameter missing"),
    "190": Rule(Outcome.ACCOUNT, meaning="access token expired or invalid"),
    "0": Rule(Outcome.ACCOUNT, meaning="authentication failed"),
    "10": Rule(Outcome.ACCOUNT, meaning="permission denied"),
    "368": Rule(Outcome.ACCOUNT, meaning="temporarily blocked for policy violations"),
    "131048": Rule(Outcome.ACCOUNT, meaning="spam rate limit hit"),
}
# Codes 200-299: permission errors of the whole account.
META_PERMISSION_RANGE = range(200, 300)

WACHAP_CODES: dict[str, Rule] = {
    "SEND_ERROR": Rule(Outcome.TEMPORARY, meaning="the gateway could not send now"),
    "INVALID_PHONE": Rule(Outcome.PERMANENT, meaning="the number is not a valid phone number"),
    "RECIPIENT_NOT_FOUND": Rule(Outcome.PERMANENT, meaning="the number is not on WhatsApp"),
}

CODE_TABLES: dict[str, dict[str, Rule]] = {"meta": META_CODES, "wachap": WACHAP_CODES}


@dataclass(frozen=True)
class Classification:
    outcome: Outcome
    rule: Rule | None = None  # the code table row that decided, if any
    # The request provably never reached the provider (connection refused, DNS): safe to re-send.
    never_left: bool = False


def rule_for(provider: str, error_code: str | None) -> Rule | None:
    if error_code is None:
        return None
    found = CODE_TABLES.get(provider, {}).get(error_code)
    if found is None and provider == "meta" and error_code.isdigit() and int(error_code) in META_PERMISSION_RANGE:
        return Rule(Outcome.ACCOUNT, meaning="permission denied (200-299)")
    return found


def classify(provider: str, http_status: int | None, error_code: str | None = None,
             transport: Transport | None = None) -> Classification:
    if transport is Transport.CONNECT_FAILED:
        return Classification(Outcome.TEMPORARY, never_left=True)
    if transport is not None:
        return Classification(Outcome.AMBIGUOUS)
    rule = rule_for(provider, error_code)
    if rule is not None:
        return Classification(rule.outcome, rule)
    if http_status is None:
        return Classification(Outcome.AMBIGUOUS)
    if 200 <= http_status < 300 and error_code is None:
        return Classification(Outcome.SENT)
    if http_status in (401, 403):
        return Classification(Outcome.ACCOUNT)
    if http_status in (408, 425, 429) or http_status >= 500:
        return Classification(Outcome.TEMPORARY)
    return Classification(Outcome.PERMANENT)
