"""The one classifier: every row of the Meta and WaChap code tables, then the HTTP statuses and transport."""

import pytest

from nightshift.notifications.classify import META_CODES, WACHAP_CODES, Outcome, Transport, classify

# REFERENCE.md, as written there: each code and what it is.
META_EXPECTED = {
    "130429": Outcome.TEMPORARY, "131056": Outcome.TEMPORARY, "131000": Outcome.TEMPORARY,
    "131001": Outcome.TEMPORARY, "131002": Outcome.TEMPORARY, "4": Outcome.TEMPORARY, "80007": Outcome.TEMPORARY,
    "131049": Outcome.TEMPORARY,
    "131026": Outcome.PERMANENT, "131047": Outcome.PERMANENT, "100": Outcome.PERMANENT, "131008": Outcome.PERMANENT,
    "190": Outcome.ACCOUNT, "0": Outcome.ACCOUNT, "10": Outcome.ACCOUNT, "368": Outcome.ACCOUNT,
    "131048": Outcome.ACCOUNT,
}
WACHAP_EXPECTED = {"SEND_ERROR": Outcome.TEMPORARY, "INVALID_PHONE": Outcome.PERMANENT,
                   "RECIPIENT_NOT_FOUND": Outcome.PERMANENT}


def test_the_tables_hold_exactly_the_reference_codes():
    assert set(META_CODES) == set(META_EXPECTED)
    assert set(WACHAP_CODES) == set(WACHAP_EXPECTED)


@pytest.mark.parametrize(("code", "expected"), sorted(META_EXPECTED.items()))
def test_meta_code_decides_before_the_http_status(code, expected):
    # Meta answers throttling with HTTP 400: the code, not the status, decides.
    for http_status in (400, 403, 500):
        assert classify("meta", http_status, code).outcome is expected


@pytest.mark.parametrize(("code", "expected"), sorted(WACHAP_EXPECTED.items()))
def test_wachap_code_decides_before_the_http_status(code, expected):
    assert classify("wachap", 400, code).outcome is expected


@pytest.mark.parametrize("code", ["200", "250", "299"])
def test_meta_permission_range_breaks_the_account(code):
    assert classify("meta", 400, code).outcome is Outcome.ACCOUNT
    assert classify("meta", 400, "300").outcome is Outcome.PERMANENT


def test_special_waits_are_in_the_table():
    assert META_CODES["131056"].pair_rate and META_CODES["131049"].floor_seconds == 24 * 3600


@pytest.mark.parametrize(("http_status", "expected"), [
    (200, Outcome.SENT), (201, Outcome.SENT), (401, Outcome.ACCOUNT), (403, Outcome.ACCOUNT),
    (429, Outcome.TEMPORARY), (408, Outcome.TEMPORARY), (500, Outcome.TEMPORARY), (503, Outcome.TEMPORARY),
    (400, Outcome.PERMANENT), (404, Outcome.PERMANENT), (422, Outcome.PERMANENT),
])
def test_http_status_when_no_code_is_known(http_status, expected):
    assert classify("wachap", http_status).outcome is expected
    assert classify("meta", http_status, "999999" if http_status >= 300 else None).outcome is expected


def test_unknown_code_falls_back_to_the_status():
    assert classify("wachap", 503, "GATEWAY_BUSY").outcome is Outcome.TEMPORARY
    assert classify("wachap", 400, "GATEWAY_SAYS_NO").outcome is Outcome.PERMANENT


def test_transport_failures():
    refused = classify("meta", None, transport=Transport.CONNECT_FAILED)
    assert refused.outcome is Outcome.TEMPORARY and refused.never_left
    for transport in (Transport.READ_TIMEOUT, Transport.RESET_AFTER_SEND):
        outcome = classify("wachap", None, transport=transport)
        assert outcome.outcome is Outcome.AMBIGUOUS and not outcome.never_left
