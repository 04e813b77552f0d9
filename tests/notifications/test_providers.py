"""The WaChap and Meta backends against real local HTTP servers: request shapes, secrets in headers
only, and what each kind of answer (or silence) becomes."""

import socket

from nightshift.notifications.classify import Outcome, Transport, classify
from nightshift.notifications.providers import OutboundMessage, Timeouts, WaChapBackend, retry_after_seconds
from tests.notifications.fake_provider import error_code, hang, reset, status
from tests.notifications.fake_provider import meta_backend as meta
from tests.notifications.fake_provider import wachap_backend as wachap

MESSAGE = OutboundMessage(41, "+22370123456", "Votre colis est arrivé", "default")


def outcome(backend, reply):
    return classify(backend.name, reply.http_status, reply.error_code, reply.transport).outcome


def test_wachap_request_shape_and_bearer_key(wachap_server):
    reply = wachap(wachap_server).send(MESSAGE, "acc-mali")
    [request] = wachap_server.requests
    assert request["path"] == "/whatsapp/messages/send"
    assert request["headers"]["Authorization"] == "Bearer test-key-123"
    assert request["json"] == {"data": {"accountId": "acc-mali", "to": "+22370123456", "type": "text",
                                        "content": "Votre colis est arrivé", "isCampaign": False}}
    assert reply.http_status == 200 and reply.message_id == "wachap-1" and reply.error_code is None
    assert "test-key-123" not in repr(reply)


def test_wachap_default_account_id(wachap_server):
    wachap(wachap_server).send(MESSAGE, None)
    assert wachap_server.requests[0]["json"]["data"]["accountId"] == "acc-uuid-1"


def test_meta_request_shape_carries_the_notification_id(meta_server):
    reply = meta(meta_server).send(MESSAGE, "55501")
    [request] = meta_server.requests
    assert request["path"] == "/55501/messages"
    assert request["headers"]["Authorization"] == "Bearer meta-token-456"
    body = request["json"]
    assert body["to"] == "+22370123456" and body["text"]["body"] == "Votre colis est arrivé"
    assert body["biz_opaque_callback_data"] == "41" and body["messaging_product"] == "whatsapp"
    assert reply.message_id == "wamid.1"


def test_error_codes_reach_the_classifier(meta_server, wachap_server):
    meta_server.then(error_code("131056"), error_code("190", 401), error_code("131026"))
    backend = meta(meta_server)
    replies = [backend.send(MESSAGE, None) for _ in range(3)]
    assert [r.error_code for r in replies] == ["131056", "190", "131026"]
    assert [outcome(backend, r) for r in replies] == [Outcome.TEMPORARY, Outcome.ACCOUNT, Outcome.PERMANENT]
    assert replies[0].detail == "error 131056"
    wachap_server.then(error_code("INVALID_PHONE"), error_code("SEND_ERROR"), error_code("RECIPIENT_NOT_FOUND"))
    backend = wachap(wachap_server)
    replies = [backend.send(MESSAGE, None) for _ in range(3)]
    assert [outcome(backend, r) for r in replies] == [Outcome.PERMANENT, Outcome.TEMPORARY, Outcome.PERMANENT]


def test_5xx_401_and_429_with_retry_after(wachap_server):
    wachap_server.then(status(503), status(401), status(429, {"Retry-After": "120"}))
    backend = wachap(wachap_server)
    first, second, third = (backend.send(MESSAGE, None) for _ in range(3))
    assert (first.http_status, outcome(backend, first)) == (503, Outcome.TEMPORARY)
    assert (second.http_status, outcome(backend, second)) == (401, Outcome.ACCOUNT)
    assert (third.http_status, third.retry_after, outcome(backend, third)) == (429, 120.0, Outcome.TEMPORARY)


def test_read_timeout_after_the_request_arrived_is_ambiguous(wachap_server):
    wachap_server.then(hang(2.0))
    reply = wachap(wachap_server, Timeouts(connect=1.0, read=0.3)).send(MESSAGE, None)
    assert reply.transport is Transport.READ_TIMEOUT
    assert wachap_server.accepted["Votre colis est arrivé"] == 1  # the provider did get it
    assert outcome(wachap(wachap_server), reply) is Outcome.AMBIGUOUS


def test_connection_closed_after_the_body_was_sent_is_ambiguous(meta_server):
    meta_server.then(reset())
    reply = meta(meta_server).send(MESSAGE, None)
    assert reply.transport is Transport.RESET_AFTER_SEND
    assert outcome(meta(meta_server), reply) is Outcome.AMBIGUOUS


def test_connection_refused_never_left():
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    backend = WaChapBackend(f"http://127.0.0.1:{port}", "k", "a", Timeouts(connect=1.0, read=1.0))
    reply = backend.send(MESSAGE, None)
    assert reply.transport is Transport.CONNECT_FAILED
    assert classify("wachap", None, transport=reply.transport).never_left


def test_probes_send_nothing(wachap_server, meta_server):
    assert wachap(wachap_server).probe(None) and meta(meta_server).probe("55501")
    assert wachap_server.requests[0]["method"] == "GET"
    assert wachap_server.requests[0]["path"] == "/whatsapp/accounts?status=connected"
    assert meta_server.requests[0]["path"] == "/55501?fields=id"
    wachap_server.connected_accounts = {"another-account"}  # the key works, this account's session dropped
    assert not wachap(wachap_server).probe(None)
    assert wachap(wachap_server).probe("another-account")
    wachap_server.probe_status = 401
    assert not wachap(wachap_server).probe(None)
    assert not wachap_server.sends()


def test_retry_after_as_an_http_date():
    from datetime import UTC, datetime
    now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    assert retry_after_seconds("Fri, 01 May 2026 12:02:00 GMT", now) == 120.0
    assert retry_after_seconds("soon", now) is None


def test_a_thread_reuses_its_fresh_connection_but_not_a_stale_one(wachap_server, monkeypatch):
    from nightshift.notifications.providers import Connections

    backend = wachap(wachap_server)
    for _ in range(3):
        assert backend.send(MESSAGE, None).http_status == 200
    assert wachap_server.connections == 1
    monkeypatch.setattr(Connections, "REUSE_IDLE_SECONDS", 0.0)
    backend.send(MESSAGE, None)
    assert wachap_server.connections == 2  # an idle connection is not trusted: a new one is opened
