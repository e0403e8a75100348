"""Incident tracker: routes and event handlers only. The rules live in chalicelib/."""
from __future__ import annotations

import functools
from typing import Any, Callable

from chalice import (
    BadRequestError,
    Chalice,
    ConflictError,
    NotFoundError,
    Response,
    UnprocessableEntityError,
)

from chalicelib import auth, payloads, services
from chalicelib.incidents import (
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
from chalicelib.store import default_store

app = Chalice(app_name="incidents")

# Chalice would answer 415 before any view or auth check runs; the views check it themselves.
ANY_CONTENT = ["*/*"]
PUBLIC_ROUTES = {"/health", "/openapi.json"}
RETRY_AFTER_SECONDS = "1"


@app.middleware("http")
def require_api_key(request: Any, get_response: Callable[[Any], Response]) -> Response:
    if request.context.get("resourcePath") in PUBLIC_ROUTES:
        return get_response(request)
    if auth.is_valid_key(request.headers.get("x-api-key"), auth.configured_api_keys()):
        return get_response(request)
    return _error(401, "UnauthorizedError", "missing or wrong x-api-key header")


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
        except TransitionNotAllowed as error:
            raise ConflictError(str(error))
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

    return wrapper


@app.route("/incidents", methods=["POST"], content_types=ANY_CONTENT)
@http_errors
def create_incident() -> Response:
    request = app.current_request
    body = payloads.json_object(request.raw_body, request.headers.get("content-type"))
    fields = payloads.fields(body, payloads.CREATE_FIELDS)
    key = payloads.idempotency_key(request.headers.get("idempotency-key"))
    once = services.OnceKey(f"api#{key}", payloads.fingerprint(body)) if key else None
    created = services.open_incident(default_store(), **fields, by="api", once=once)
    headers = {"Location": f"/incidents/{created.incident['id']}"}
    if created.replayed:
        headers["Idempotent-Replayed"] = "true"
    return _incident_response(created.incident, created.status_code, headers)


@app.route("/incidents", methods=["GET"], content_types=ANY_CONTENT)
@http_errors
def list_incidents() -> Response:
    query = payloads.list_query(app.current_request.query_params)
    page = services.list_incidents(
        default_store(), status=query.status, source=query.source,
        limit=query.limit, cursor=query.cursor,
    )
    items = [public_view(incident) for incident in page.items]
    return Response(body={"items": items, "next_cursor": page.next_cursor}, status_code=200)


@app.route("/incidents/{incident_id}", methods=["GET"], content_types=ANY_CONTENT)
@http_errors
def get_incident(incident_id: str) -> Response:
    incident = services.get_incident(default_store(), parse_incident_id(incident_id))
    return _incident_response(incident)


@app.route("/incidents/{incident_id}", methods=["PATCH"], content_types=ANY_CONTENT)
@http_errors
def patch_incident(incident_id: str) -> Response:
    request = app.current_request
    ident = parse_incident_id(incident_id)
    body = payloads.json_object(request.raw_body, request.headers.get("content-type"))
    fields = payloads.fields(body, payloads.PATCH_FIELDS)
    incident = services.change_status(
        default_store(), ident, fields["status"], note=fields["note"], by="api",
        if_match=request.headers.get("if-match"),
    )
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
    return Response(
        body=public_view(incident),
        status_code=status_code,
        headers={**(headers or {}), "ETag": etag(incident)},
    )


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(body={"Code": code, "Message": message}, status_code=status, headers=headers or {})


def _unavailable() -> Response:
    return _error(
        503, "ServiceUnavailableError",
        "the incident table does not answer right now; retry after a moment",
        {"Retry-After": RETRY_AFTER_SECONDS},
    )
