"""The OpenAI-compatible client against a real local HTTP server: usage or its estimate, what is retried
(408/409/429/5xx, honouring Retry-After) and what never is (other 4xx, insufficient_quota), truncated
output, read timeouts; and the template generator's output passes the validators."""

import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from nightshift.ai.client import ChatRequest, ProviderError, TemplateGenerator, is_retried, retry_after_seconds
from nightshift.ai.prompts import business_inputs, estimate_prompt_tokens, template_for
from nightshift.ai.validate import FAQ_SCHEMA, validate
from tests.ai.conftest import client_of
from tests.ai.fake_openai import COMPLETION_TOKENS, DESCRIPTION, PROMPT_TOKENS, error, ok, slow

BUSINESS = {"name": "Boulangerie Dupont", "trade_name": None, "naf_label": "Boulangerie et boulangerie-pâtisserie",
            "city": "Paris", "postal_code": "75002", "description": None, "category": "Restauration",
            "subcategory": "Boulangerie"}


def chat(kind: str = "description") -> ChatRequest:
    inputs = business_inputs(BUSINESS, 500)
    return ChatRequest(kind, template_for(kind, "fr").messages(inputs), 300, 0.7, inputs,
                       FAQ_SCHEMA if kind == "faq" else None)


def test_a_success_with_usage_reports_the_provider_counts_and_sends_the_key_as_a_bearer(server):
    completion = client_of(server).complete(chat())
    assert (completion.text, completion.prompt_tokens, completion.completion_tokens) == (
        DESCRIPTION, PROMPT_TOKENS, COMPLETION_TOKENS)
    assert completion.usage_estimated is False
    [body] = server.requests
    assert (body["model"], body["max_tokens"], body["messages"][0]["role"]) == ("test-model", 300, "system")
    assert server.headers[0]["Authorization"] == "Bearer sk-test-secret"


def test_without_usage_the_tokens_are_counted_locally_and_flagged_estimated(server):
    server.then(ok(usage=False))
    completion = client_of(server).complete(chat())
    assert completion.usage_estimated is True
    assert completion.prompt_tokens == estimate_prompt_tokens(chat().messages)
    assert completion.completion_tokens == -(-len(DESCRIPTION) // 4)


def test_a_429_waits_the_retry_after_then_succeeds(server):
    server.then(error(429, "rate_limit_exceeded", {"retry-after": "1"}))
    started = time.monotonic()
    completion = client_of(server).complete(chat())
    assert completion.text == DESCRIPTION and len(server.requests) == 2
    assert server.arrivals[1] - server.arrivals[0] >= 1.0
    assert time.monotonic() - started >= 1.0


def test_retry_after_ms_wins_over_retry_after_and_an_http_date_is_read():
    assert retry_after_seconds({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    assert retry_after_seconds({"retry-after": format_datetime(now + timedelta(seconds=30), usegmt=True)},
                               now) == 30
    assert retry_after_seconds({}) is None


def test_500_then_success_is_retried_once(server):
    server.then(error(500), error(503))
    assert client_of(server).complete(chat()).text == DESCRIPTION
    assert len(server.requests) == 3


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504])
def test_the_classifier_retries_timeouts_conflicts_rate_limits_and_server_errors(status):
    assert is_retried(status, None)


@pytest.mark.parametrize(("status", "code"), [(400, None), (401, None), (403, None), (404, None), (422, None),
                                              (429, "insufficient_quota")])
def test_the_classifier_never_retries_other_4xx_nor_a_spent_account(status, code):
    assert not is_retried(status, code)


def test_insufficient_quota_is_permanent_and_sent_once(server):
    server.then(error(429, "insufficient_quota"))
    with pytest.raises(ProviderError) as failure:
        client_of(server).complete(chat())
    assert (failure.value.code, failure.value.temporary, failure.value.billed) == ("insufficient_quota", False, "no")
    assert len(server.requests) == 1


def test_a_400_is_permanent_and_sent_once(server):
    server.then(error(400, "invalid_request_error"))
    with pytest.raises(ProviderError) as failure:
        client_of(server).complete(chat())
    assert failure.value.temporary is False and len(server.requests) == 1


def test_server_errors_past_the_retries_are_a_temporary_failure(server):
    server.then(*[error(500)] * 3)
    with pytest.raises(ProviderError) as failure:
        client_of(server, http_retries=2).complete(chat())
    assert (failure.value.temporary, failure.value.billed, len(server.requests)) == (True, "no", 3)


def test_a_read_timeout_is_not_sent_again_and_may_have_been_billed(server):
    server.then(slow(3))
    started = time.monotonic()
    with pytest.raises(ProviderError) as failure:
        client_of(server, timeout_s=0.5).complete(chat())
    assert time.monotonic() - started < 2.5
    assert (failure.value.code, failure.value.temporary, failure.value.billed) == ("timeout", True, "unknown")
    assert len(server.requests) == 1


def test_finish_reason_length_is_a_failure_with_its_usage_not_content(server):
    server.then(ok("La Boulangerie Dupont accueille", finish_reason="length"))
    with pytest.raises(ProviderError) as failure:
        client_of(server).complete(chat())
    assert (failure.value.code, failure.value.billed, failure.value.tokens) == (
        "length", "yes", PROMPT_TOKENS + COMPLETION_TOKENS)


def test_faq_is_asked_as_structured_json_output(server):
    client_of(server).complete(chat("faq"))
    assert server.requests[0]["response_format"]["type"] == "json_schema"
    assert server.requests[0]["response_format"]["json_schema"]["schema"] == FAQ_SCHEMA


def test_an_unreachable_provider_is_a_temporary_failure_after_its_retries():
    from nightshift.ai.client import OpenAICompatibleClient

    client = OpenAICompatibleClient("http://127.0.0.1:9/v1", "", "m", timeout_s=1, http_retries=1,
                                    retry_base_s=0.01, retry_cap_s=0.01)
    with pytest.raises(ProviderError) as failure:
        client.complete(chat())
    assert (failure.value.code, failure.value.temporary, failure.value.billed) == ("unreachable", True, "no")


@pytest.mark.parametrize("kind", ["description", "meta_description", "faq"])
def test_the_template_generator_is_deterministic_and_passes_the_validators(kind):
    odd = {**BUSINESS, "name": "l'atelier [test] n.c.a.", "naf_label": "Autres activités n.c.a."}
    for business in (BUSINESS, odd):
        inputs = business_inputs(business, 500)
        request = ChatRequest(kind, template_for(kind, "fr").messages(inputs), 300, 0.7, inputs)
        first, second = TemplateGenerator().complete(request), TemplateGenerator().complete(request)
        assert first.text == second.text and first.usage_estimated and first.model == "template-v1"
        assert validate(kind, first.text, ["en tant qu'ia"]).ok, validate(kind, first.text, []).reasons
