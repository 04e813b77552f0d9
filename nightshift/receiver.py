"""The webhook receiver: a small Starlette app, its own process (`nightshift webhooks serve`, started by
`make run` beside `dagster dev`).

It checks and stores, nothing more: a signed (Meta) or secret-bearing (WaChap) post is split into its
events, stored with a dedupe key and answered 200 at once; the receipts job applies them. It also
serves `GET /metrics` for Prometheus (values read from the database at scrape time).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from nightshift.notifications import webhooks

logger = logging.getLogger("nightshift.receiver")
DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8090
DEFAULT_MAX_BYTES = 256 * 1024  # Meta batches up to 1,000 statuses per post, well under this
JSON_TYPES = ("application/json",)


class ReceiverConfigError(ValueError):
    """A NIGHTSHIFT_WEBHOOKS_* / NIGHTSHIFT_METRICS variable is invalid (the message names it)."""


@dataclass(frozen=True)
class ReceiverSettings:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    max_bytes: int = DEFAULT_MAX_BYTES
    meta_verify_token: str = ""
    meta_app_secret: str = ""
    wachap_secret: str = ""
    metrics: bool = True

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> ReceiverSettings:
        env = os.environ if environ is None else environ

        def number(name: str, default: int) -> int:
            value = env.get(name, "").strip()
            if not value:
                return default
            if not value.isdigit() or int(value) <= 0:
                raise ReceiverConfigError(f"{name}: expected a positive whole number, got {value!r}")
            return int(value)

        metrics = env.get("NIGHTSHIFT_METRICS", "true").strip().lower()
        if metrics not in ("true", "false", "1", "0", "yes", "no", "on", "off", ""):
            raise ReceiverConfigError(f"NIGHTSHIFT_METRICS: expected true or false, got {metrics!r}")
        return cls(
            host=env.get("NIGHTSHIFT_WEBHOOKS_HOST", "").strip() or DEFAULT_HOST,
            port=number("NIGHTSHIFT_WEBHOOKS_PORT", DEFAULT_PORT),
            max_bytes=number("NIGHTSHIFT_WEBHOOKS_MAX_BYTES", DEFAULT_MAX_BYTES),
            meta_verify_token=env.get("NIGHTSHIFT_META_VERIFY_TOKEN", ""),
            meta_app_secret=env.get("NIGHTSHIFT_META_APP_SECRET", ""),
            wachap_secret=env.get("NIGHTSHIFT_WACHAP_WEBHOOK_SECRET", ""),
            metrics=metrics in ("true", "1", "yes", "on", ""),
        )


class _TooLarge(Exception):
    pass


async def _body(request: Request, limit: int) -> bytes:
    """The raw body, refused past `limit` bytes whether or not Content-Length announced it."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _is_json(request: Request) -> bool:
    return request.headers.get("content-type", "").split(";")[0].strip().lower() in JSON_TYPES


def create_app(engine: Engine, settings: ReceiverSettings,
               metrics_exposition: Callable[[], tuple[bytes, str]] | None = None) -> Starlette:
    """The app on `engine`; `metrics_exposition` gives the /metrics body and its content type."""

    async def accept(request: Request, parse: Callable[[bytes], list[webhooks.Event]],
                     authorised: Callable[[bytes], bool]) -> Response:
        if not _is_json(request):
            return JSONResponse({"error": "content type must be application/json"}, status_code=415)
        try:
            body = await _body(request, settings.max_bytes)
        except _TooLarge:
            return JSONResponse({"error": f"body larger than {settings.max_bytes} bytes"}, status_code=413)
        if not authorised(body):
            return JSONResponse({"error": "bad or missing signature"}, status_code=401)
        try:
            events = parse(body)
        except webhooks.BadPayload as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        stored = await run_in_threadpool(webhooks.receive, engine, events)
        return JSONResponse({"events": len(events), "stored": stored})

    async def meta_verify(request: Request) -> Response:
        params = request.query_params
        token = params.get("hub.verify_token", "")
        if params.get("hub.mode") == "subscribe" and webhooks.secret_matches(settings.meta_verify_token, token):
            return PlainTextResponse(params.get("hub.challenge", ""))
        return PlainTextResponse("verify token mismatch", status_code=403)

    async def meta_post(request: Request) -> Response:
        if not settings.meta_app_secret:
            return JSONResponse({"error": "NIGHTSHIFT_META_APP_SECRET is not set"}, status_code=503)
        signature = request.headers.get("x-hub-signature-256")
        return await accept(request, webhooks.meta_events,
                            lambda body: webhooks.meta_signature_valid(settings.meta_app_secret, body, signature))

    async def wachap_post(request: Request) -> Response:
        if not settings.wachap_secret:
            return JSONResponse({"error": "NIGHTSHIFT_WACHAP_WEBHOOK_SECRET is not set"}, status_code=503)
        given = request.path_params["secret"]
        return await accept(request, webhooks.wachap_events,
                            lambda body: webhooks.secret_matches(settings.wachap_secret, given))

    async def metrics(request: Request) -> Response:
        body, content_type = await run_in_threadpool(metrics_exposition)
        return Response(body, media_type=content_type)

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    routes = [
        Route("/webhooks/meta", meta_verify, methods=["GET"]),
        Route("/webhooks/meta", meta_post, methods=["POST"]),
        Route("/webhooks/wachap/{secret}", wachap_post, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
    if settings.metrics and metrics_exposition is not None:
        routes.append(Route("/metrics", metrics, methods=["GET"]))
    return Starlette(routes=routes)
