"""Incident tracker: routes and event handlers only. The rules live in chalicelib/."""
from __future__ import annotations

import functools
import json
import logging
import os
from datetime import datetime, timezone
from typing import Any, Callable

from botocore.exceptions import BotoCoreError, ClientError
from chalice import (
    BadRequestError,
    Chalice,
    Cron,
    Rate,
    NotFoundError,
    Response,
    UnprocessableEntityError,
)

# Only what an API request needs is imported here; the rest on first use (docs/cold-start.md).
from chalicelib import auth, logs, metrics, observability, payloads, services
from chalicelib.incidents import (
    DedupKeyHeld,
    IdempotencyKeyReused,
    IncidentNotFound,
    InvalidInput,
    PreconditionFailed,
    TransitionNotAllowed,
    Unavailable,
    etag,
    parse_incident_id,
    public_view,
)
from chalicelib.secrets import SecretUnavailable
from chalicelib.store import default_store

app = Chalice(app_name="incidents", configure_logs=False)
# JSON log lines (the stage's LOG_LEVEL), EMF metrics, X-Request-Id: first, so it sees every answer.
observability.install(app)

# Chalice would answer 415 before any view or auth check runs; the views check it themselves.
ANY_CONTENT = ["*/*"]
PUBLIC_ROUTES = {"/health", "/openapi.json", "/telegram/webhook", "/docs"}
RETRY_AFTER_SECONDS = "1"
CALLER = "incidents.api_key"


@app.middleware("http")
def require_api_key(request: Any, get_response: Callable[[Any], Response]) -> Response:
    if request.context.get("resourcePath") in PUBLIC_ROUTES:
        return get_response(request)
    try:
        keys = auth.configured_api_keys()
    except SecretUnavailable:
        return _secret_unavailable()
    caller = auth.authenticate(request.headers.get("x-api-key"), keys)
    if caller is None:
        return _error(401, "UnauthorizedError", "missing or wrong x-api-key header")
    logs.annotate(key_name=caller.name)  # the request's log line says which key acted
    if not caller.may(request.method):
        return _forbidden(caller)
    request.context[CALLER] = caller
    return get_response(request)


def _caller() -> auth.ApiKey:
    """The key require_api_key accepted for this request: who acts, and its Idempotency scope."""
    return app.current_request.context[CALLER]


def http_errors(view: Callable[..., Response]) -> Callable[..., Response]:
    """Domain exceptions -> the contract's status codes."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Response:
        try:
            return view(*args, **kwargs)
        except InvalidInput as error:
            raise BadRequestError(str(error))
        except IncidentNotFound as error:
            raise NotFoundError(str(error))
        except (TransitionNotAllowed, DedupKeyHeld) as error:
            headers = {"ETag": etag(error.incident)} if error.incident else {}
            return _error(409, "ConflictError", str(error), headers)
        except IdempotencyKeyReused as error:
            raise UnprocessableEntityError(str(error))
        except PreconditionFailed as error:
            return _error(412, "PreconditionFailedError", str(error), {"ETag": etag(error.incident)})
        except payloads.BodyTooLarge as error:
            return _error(413, "RequestEntityTooLargeError", str(error))
        except payloads.NotJson as error:
            return _error(415, "UnsupportedMediaType", str(error))
        except Unavailable:
            return _unavailable()
        except SecretUnavailable:
            return _secret_unavailable()

    return wrapper


@app.route("/incidents", methods=["POST"], content_types=ANY_CONTENT)
@http_errors
def create_incident() -> Response:
    request = app.current_request
    body = payloads.json_object(request.raw_body, request.headers.get("content-type"))
    fields = payloads.create_fields(body)
    key = payloads.idempotency_key(request.headers.get("idempotency-key"))
    caller = _caller()
    once = services.OnceKey(f"api#{caller.caller_id}#{key}", payloads.fingerprint(body)) if key else None
    created = services.open_incident(default_store(), **fields, by=caller.by, once=once)
    headers = {"Location": f"/incidents/{created.incident['id']}"}
    if created.replayed:
        headers["Idempotent-Replayed"] = "true"
    return _incident_response(created.incident, created.status_code, headers)


@app.route("/incidents", methods=["GET"], content_types=ANY_CONTENT)
@http_errors
def list_incidents() -> Response:
    query = payloads.list_query(app.current_request.query_params)
    page = services.list_incidents(
        default_store(), status=query.status, source=query.source, team=query.team,
        limit=query.limit, cursor=query.cursor,
    )
    items = [public_view(incident) for incident in page.items]
    return _json({"items": items, "next_cursor": page.next_cursor})


@app.route("/incidents/{incident_id}", methods=["GET"], content_types=ANY_CONTENT)
@http_errors
def get_incident(incident_id: str) -> Response:
    incident = services.get_incident(default_store(), parse_incident_id(incident_id))
    return _incident_response(incident)


@app.route("/incidents/{incident_id}/history", methods=["GET"], content_types=ANY_CONTENT)
@http_errors
def incident_history(incident_id: str) -> Response:
    query = payloads.page_query(app.current_request.query_params)
    page = services.incident_history(
        default_store(), parse_incident_id(incident_id), limit=query.limit, cursor=query.cursor
    )
    return _json({"items": page.items, "next_cursor": page.next_cursor})


@app.route("/incidents/{incident_id}", methods=["PATCH"], content_types=ANY_CONTENT)
@http_errors
def patch_incident(incident_id: str) -> Response:
    request = app.current_request
    ident = parse_incident_id(incident_id)
    body = payloads.json_object(request.raw_body, request.headers.get("content-type"))
    fields = payloads.patch_fields(body)
    incident = services.patch_incident(default_store(), ident, fields, by=_caller().by,
                                       if_match=request.headers.get("if-match"))
    return _incident_response(incident)


@app.route("/health", methods=["GET"], content_types=ANY_CONTENT)
def health() -> Response:
    if services.is_healthy(default_store()):
        return Response(body={"status": "ok"}, status_code=200)
    return Response(
        body={"status": "unavailable"}, status_code=503,
        headers={"Retry-After": RETRY_AFTER_SECONDS},
    )


def _incident_response(
    incident: dict[str, Any], status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return _json(public_view(incident), status_code, {**(headers or {}), "ETag": etag(incident)})


def _json(body: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    """JSON as UTF-8 text: Chalice's own encoder would escape every Cyrillic letter."""
    return Response(
        body=json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        status_code=status_code,
        headers={**(headers or {}), "Content-Type": "application/json; charset=utf-8"},
    )


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(body={"Code": code, "Message": message}, status_code=status, headers=headers or {})


def _forbidden(caller: auth.ApiKey) -> Response:
    return _error(403, "ForbiddenError", caller.refusal(app.current_request.method))


def _unavailable() -> Response:
    return _error(
        503, "ServiceUnavailableError",
        "the incident table does not answer right now; retry after a moment",
        {"Retry-After": RETRY_AFTER_SECONDS},
    )


def _secret_unavailable() -> Response:
    return _error(
        503, "ServiceUnavailableError",
        "the service cannot read its credentials right now; retry after a moment",
        {"Retry-After": RETRY_AFTER_SECONDS},
    )


# --- Telegram webhook ---

TELEGRAM_SECRET_HEADER = "x-telegram-bot-api-secret-token"


@app.route("/telegram/webhook", methods=["POST"], content_types=ANY_CONTENT)
def telegram_webhook() -> Response:
    """Telegram's secret token instead of the API key; 200 for every update, 503 when storage fails."""
    request = app.current_request
    try:
        accepted = auth.configured_telegram_secrets()
    except SecretUnavailable:
        return _secret_unavailable()
    if not auth.is_valid_key(request.headers.get(TELEGRAM_SECRET_HEADER), accepted):
        return _error(401, "UnauthorizedError", "missing or wrong X-Telegram-Bot-Api-Secret-Token header")
    from chalicelib import telegram_bot

    settings = telegram_bot.Settings.from_environment()
    try:
        answer = telegram_bot.handle_body(default_store(), request.raw_body, settings, _now())
    except Unavailable:
        return _unavailable()
    return _json(answer)


# --- CloudWatch alarms ---

alarm_log = logging.getLogger("incidents_alarms")
# A store that does not answer: raised so Lambda retries; the once-records make the retry safe.
STORE_FAILURES = (Unavailable, BotoCoreError, ClientError)
ALARM_TOPIC = os.environ.get("ALARM_TOPIC", "incident-alarms")


@app.on_sns_message(topic=ALARM_TOPIC)
def on_alarm_notification(event: Any) -> None:
    """Every record of the delivery: a malformed one is logged and skipped, a store failure is
    raised after the others had their chance."""
    from chalicelib import alarms

    failure = None
    for index, record in enumerate(event.to_dict().get("Records") or []):
        try:
            ingested = services.ingest_cloudwatch(default_store(), *alarms.sns_record(record))
            alarm_log.info("SNS record %s", ingested.outcome, extra={"record": index})
        except STORE_FAILURES as error:
            alarm_log.warning("SNS record not stored, will be retried: %s", error, extra={"record": index})
            failure = failure or error
        except (alarms.MalformedAlarm, InvalidInput) as error:
            alarm_log.error("SNS record skipped: %s", error, extra={"record": index})
            metrics.alarm_record_skipped(error)
    if failure is not None:
        raise failure


@app.on_cw_event({"source": ["aws.cloudwatch"], "detail-type": ["CloudWatch Alarm State Change"]})
def on_alarm_state_change(event: Any) -> None:
    from chalicelib import alarms

    raw = event.to_dict()
    try:
        ingested = services.ingest_cloudwatch(default_store(), *alarms.eventbridge_record(raw))
        alarm_log.info("EventBridge event %s", ingested.outcome, extra={"event_id": raw.get("id")})
    except (alarms.MalformedAlarm, InvalidInput) as error:  # a retry cannot fix it
        alarm_log.error("EventBridge event skipped: %s", error, extra={"event_id": raw.get("id")})
        metrics.alarm_record_skipped(error)


@app.schedule("rate(5 minutes)")
def report_open_incidents(event: Any) -> None:
    """The OpenIncidents gauge for the dashboard's "open now" (chalicelib/metrics.py)."""
    metrics.report_open_incidents(default_store())


# --- OpenAPI and docs ---


@app.route("/openapi.json", methods=["GET"], content_types=ANY_CONTENT)
def openapi_document() -> Response:
    from chalicelib import openapi

    return Response(body=openapi.document(_api_root() or "/"), status_code=200)


@app.route("/docs", methods=["GET"], content_types=ANY_CONTENT)
def docs() -> Response:
    from chalicelib import docs_page

    page = docs_page.render(spec_url=f"{_api_root()}/openapi.json")
    return Response(body=page, status_code=200, headers=docs_page.headers())


def _api_root() -> str:
    """The path prefix in front of the routes: the stage (`/api`) behind API Gateway, '' locally."""
    context = app.current_request.context
    path, resource = context.get("path") or "", context.get("resourcePath") or ""
    return path[: -len(resource)].rstrip("/") if resource and path.endswith(resource) else ""


# --- Notes, stats and the board ---

# The board is a static page; it asks the person for the API key and sends it with each call.
PUBLIC_ROUTES.add("/board")


@app.route("/incidents/{incident_id}/notes", methods=["POST"], content_types=ANY_CONTENT)
@http_errors
def add_note(incident_id: str) -> Response:
    request = app.current_request
    ident = parse_incident_id(incident_id)
    body = payloads.json_object(request.raw_body, request.headers.get("content-type"))
    fields = payloads.fields(body, payloads.NOTE_FIELDS)
    incident = services.add_note(
        default_store(), ident, fields["note"], by=_caller().by, if_match=request.headers.get("if-match")
    )
    return _incident_response(incident, 201)


@app.route("/stats", methods=["GET"], content_types=ANY_CONTENT)
@http_errors
def incident_stats() -> Response:
    from chalicelib import stats

    since = stats.since_from_query(app.current_request.query_params, stats.utc_now())
    return _json(services.incident_stats(default_store(), since))


@app.route("/board", methods=["GET"], content_types=ANY_CONTENT)
def board_page() -> Response:
    from chalicelib import board

    return Response(body=board.page(), status_code=200, headers=board.HEADERS)


# --- Notifications into the Telegram group, after a change is stored ---

# Deployed, the template points the event source at the table's stream (deploy/resources.py).
TABLE_STREAM_ARN = os.environ.get(
    "TABLE_STREAM_ARN", "arn:aws:dynamodb:eu-west-1:000000000000:table/incidents/stream/local"
)
DIGEST_HOUR_UTC = int(os.environ.get("DIGEST_HOUR_UTC") or 8)


@app.on_dynamodb_record(stream_arn=TABLE_STREAM_ARN, batch_size=100,
                        maximum_batching_window_in_seconds=5)
def on_incident_change(event: Any) -> None:
    """A failure raises: Lambda retries the batch, and what was sent already is not sent again."""
    from chalicelib import notifier

    settings, sender = _notifier_settings()
    notifier.deliver_changes(default_store(), sender, settings, event.to_dict()["Records"], _now())


@app.schedule(Rate(5, unit=Rate.MINUTES))
def remind_waiting_incidents(event: Any) -> None:
    from chalicelib import notifier

    settings, sender = _notifier_settings()
    notifier.send_reminders(default_store(), sender, settings, _now())


@app.schedule(Cron(0, DIGEST_HOUR_UTC, "*", "*", "?", "*"))
def daily_digest(event: Any) -> None:
    from chalicelib import notifier

    settings, sender = _notifier_settings()
    notifier.send_digest(default_store(), sender, settings, _now())


def _notifier_settings() -> tuple[Any, Any]:
    """A stage told to notify needs its bot token (else BotTokenUnavailable); with no stage chat,
    the token is read only when a team's chat or a person is told something."""
    from chalicelib import notifier, telegram_client

    settings = notifier.Settings.from_environment()
    # Teams' chats may need the token even when the stage has no chat: read on first message.
    return settings, telegram_client.from_environment() if settings.chat_id else telegram_client.Lazy()


@app.schedule(Rate(1, unit=Rate.MINUTES))
def escalate(event: Any) -> None:
    """Pages the next rule of every incident whose escalation is due at the event's time."""
    from chalicelib.oncall import escalation, people

    now = datetime.fromisoformat(event.to_dict()["time"].replace("Z", "+00:00"))
    escalation.escalate(default_store(), _notifier_settings()[1], now, people.direct_chat)


def _now() -> datetime:
    return datetime.now(timezone.utc)


# --- Monitoring integrations: PagerDuty Events API v2, Alertmanager and Grafana ---

# Authenticated in the views: /v2/enqueue by the body's routing_key, /alertmanager by
# `Authorization: Bearer <API key>` as well as x-api-key.
PUBLIC_ROUTES |= {"/v2/enqueue", "/alertmanager"}
# Alertmanager sends a whole group at once (100 alerts are ~60 KB); PagerDuty's own limit is 512 KB.
INTEGRATION_MAX_BODY_BYTES = 512 * 1024


@app.route("/v2/enqueue", methods=["POST"], content_types=ANY_CONTENT)
def pagerduty_enqueue() -> Response:
    from chalicelib import intake, integrations

    request = app.current_request
    try:
        answer = integrations.enqueue(intake.default_intake(), request.raw_body,
                                      request.headers.get("content-type"),
                                      auth.configured_integration_keys(), INTEGRATION_MAX_BODY_BYTES)
    except Unavailable:
        return _unavailable()
    except SecretUnavailable:
        return _secret_unavailable()
    return _json(answer.body, answer.status_code)


@app.route("/alertmanager", methods=["POST"], content_types=ANY_CONTENT)
@http_errors
def alertmanager_webhook() -> Response:
    from chalicelib import alertmanager, intake, integrations

    request = app.current_request
    presented = auth.bearer_token(request.headers.get("authorization")) or request.headers.get("x-api-key")
    caller = auth.authenticate(presented, auth.configured_api_keys())
    if caller is None:
        return _error(401, "UnauthorizedError", "missing or wrong Authorization: Bearer <API key> (or x-api-key)")
    logs.annotate(key_name=caller.name)
    if not caller.may(request.method):
        return _forbidden(caller)
    body = payloads.json_object(request.raw_body, request.headers.get("content-type"),
                                max_bytes=INTEGRATION_MAX_BODY_BYTES)
    try:
        batch = alertmanager.parse_batch(body)
    except alertmanager.MalformedBatch as error:
        raise BadRequestError(str(error))
    return _json(integrations.accept_batch(intake.default_intake(), body, batch))


# Deployed, INTAKE_QUEUE names the stack's queue (deploy/resources.py); locally scripts/local_intake.py.
INTAKE_QUEUE = os.environ.get("INTAKE_QUEUE", "incidents-intake")


@app.on_sqs_message(queue=INTAKE_QUEUE, batch_size=1)
def apply_alerts(event: Any) -> None:
    """What the integration routes accepted. A failure raises: SQS delivers the message again
    (the once-keys skip what was applied), then parks it in the failure queue."""
    from chalicelib import intake, integrations

    for record in event:
        integrations.apply_message(default_store(), intake.default_intake().read(record.body))


# --- On call: teams, rotations, overrides (chalicelib/oncall/, docs/oncall.md) ---


def oncall_errors(view: Callable[..., Response]) -> Callable[..., Response]:
    """The on-call domain errors -> status codes; imported on first use, as the views are."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Response:
        from chalicelib.oncall.teams import OnCallLimit, OverrideNotFound, TeamNotFound

        try:
            return view(*args, **kwargs)
        except (TeamNotFound, OverrideNotFound) as error:
            raise NotFoundError(str(error))
        except OnCallLimit as error:
            return _error(409, "ConflictError", str(error))

    return wrapper


@app.route("/teams", methods=["GET"], content_types=ANY_CONTENT)
@http_errors
def list_teams() -> Response:
    from chalicelib.oncall import teams

    return _json({"items": teams.list_teams(default_store())})


@app.route("/teams/{name}", methods=["PUT"], content_types=ANY_CONTENT)
@http_errors
@oncall_errors
def put_team(name: str) -> Response:
    from chalicelib.oncall import teams

    request = app.current_request
    body = payloads.json_object(request.raw_body, request.headers.get("content-type"))
    team, created = teams.put_team(default_store(), name, body, _now())
    return _json(team, 201 if created else 200)


@app.route("/teams/{name}", methods=["GET"], content_types=ANY_CONTENT)
@http_errors
@oncall_errors
def get_team(name: str) -> Response:
    from chalicelib.oncall import teams

    return _json(teams.get_team(default_store(), name))


@app.route("/teams/{name}", methods=["DELETE"], content_types=ANY_CONTENT)
@http_errors
@oncall_errors
def delete_team(name: str) -> Response:
    from chalicelib.oncall import teams

    teams.delete_team(default_store(), name)
    return Response(body="", status_code=204)


@app.route("/teams/{name}/oncall", methods=["GET"], content_types=ANY_CONTENT)
@http_errors
@oncall_errors
def who_is_on_call(name: str) -> Response:
    from chalicelib.oncall import teams

    at = teams.at_from_query(app.current_request.query_params, _now())
    return _json(teams.who_is_on_call(default_store(), name, at))


@app.route("/teams/{name}/overrides", methods=["POST"], content_types=ANY_CONTENT)
@http_errors
@oncall_errors
def add_override(name: str) -> Response:
    from chalicelib.oncall import teams

    request = app.current_request
    body = payloads.json_object(request.raw_body, request.headers.get("content-type"))
    return _json(teams.add_override(default_store(), name, body, _now()), 201)


@app.route("/teams/{name}/overrides", methods=["GET"], content_types=ANY_CONTENT)
@http_errors
@oncall_errors
def list_overrides(name: str) -> Response:
    from chalicelib.oncall import teams

    return _json({"items": teams.list_overrides(default_store(), name, _now())})


@app.route("/teams/{name}/overrides/{override_id}", methods=["DELETE"], content_types=ANY_CONTENT)
@http_errors
@oncall_errors
def delete_override(name: str, override_id: str) -> Response:
    from chalicelib.oncall import teams

    teams.delete_override(default_store(), name, override_id, _now())
    return Response(body="", status_code=204)


# --- Routing: which team a new incident belongs to (chalicelib/oncall/routing.py, docs/routing.md) ---


@app.route("/routes", methods=["PUT"], content_types=ANY_CONTENT)
@http_errors
def put_routes() -> Response:
    from chalicelib.oncall import teams

    request = app.current_request
    body = payloads.json_object(request.raw_body, request.headers.get("content-type"))
    return _json({"routes": teams.put_routes(default_store(), body, _now())})


@app.route("/routes", methods=["GET"], content_types=ANY_CONTENT)
@http_errors
def get_routes() -> Response:
    from chalicelib.oncall import teams

    return _json({"routes": teams.get_routes(default_store())})
