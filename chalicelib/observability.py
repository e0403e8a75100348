"""Logs, metrics and request ids around every function of the app (what: docs/operations.md).

install(app) before any other middleware, so it sees their answers too (configure_logs=False).
No Chalice import: it only reads the objects it is given.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable

from chalicelib import logs, metrics

request_log = logging.getLogger("chalicelib.requests")
event_log = logging.getLogger("chalicelib.events")

REQUEST_ID_HEADER = "X-Request-Id"
TELEGRAM_ROUTE = "/telegram/webhook"
EVENT_TYPES = ("sns", "cloudwatch", "scheduled")


def install(app: Any) -> None:
    logs.setup()
    app.register_middleware(http_middleware, "http")
    for event_type in EVENT_TYPES:
        app.register_middleware(event_middleware, event_type)


def http_middleware(request: Any, get_response: Callable[[Any], Any]) -> Any:
    context = request.context or {}
    started = time.perf_counter()
    with logs.invocation(request.lambda_context, api_request_id=context.get("requestId")) as ids, \
            metrics.batch(), logs.summary() as summary:
        fields = {"route": context.get("resourcePath"), "method": request.method}
        logs.annotate(incident_id=_as_id((request.uri_params or {}).get("incident_id")))
        try:
            response = get_response(request)
        except Exception:
            _request_done(fields, 500, started, summary, exc_info=True)
            raise
        response.headers[REQUEST_ID_HEADER] = ids["request_id"]
        _request_done(fields, response.status_code, started, summary)
        return response


def _request_done(fields: dict[str, Any], status: int, started: float, summary: dict[str, Any],
                  exc_info: bool = False) -> None:
    metrics.request_error(status)
    if fields["route"] == TELEGRAM_ROUTE:
        metrics.telegram_update(_telegram_outcome(status, summary))
    level = logging.ERROR if status >= 500 else logging.INFO
    request_log.log(level, "request", exc_info=exc_info, extra={
        **fields, "status": status, "latency_ms": _ms(started),
        **summary})


def _telegram_outcome(status: int, summary: dict[str, Any]) -> str:
    if status == 401:
        return "unauthorized"
    if status >= 500:
        return "failed"
    return str(summary.get("outcome") or "handled")


def event_middleware(event: Any, get_response: Callable[[Any], Any]) -> Any:
    started = time.perf_counter()
    raw = event.to_dict() if hasattr(event, "to_dict") else {}
    records = raw.get("Records") if isinstance(raw, dict) else None
    with logs.invocation(event.context), metrics.batch():
        fields = {"event_type": type(event).__name__,
                  "records": len(records) if isinstance(records, list) else 1}
        try:
            result = get_response(event)
        except Exception as error:
            event_log.error("event invocation failed; Lambda retries it", exc_info=True, extra={
                **fields, "error": type(error).__name__, "latency_ms": _ms(started)})
            raise
        event_log.info("event invocation", extra={**fields, "latency_ms": _ms(started)})
        return result


def _as_id(value: Any) -> Any:
    """None unless an id: any text may arrive there (`²`, `-1`, `٣`)."""
    text = str(value)
    return int(text) if text.isascii() and text.isdigit() and len(text) < 19 else None


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
