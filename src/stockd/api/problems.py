"""Every error leaves the service as an RFC 9457 problem document with a ``code``."""

from __future__ import annotations

import logging

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec

from stockd.api import render
from stockd.api.schemas import Problem, encode
from stockd.domain.errors import RateLimited, StockdError, Unauthorized, Unavailable

log = logging.getLogger("stockd.api")

CODE_OF_STATUS = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


def problem_response(doc: Problem, headers: dict[str, str] | None = None) -> Response[bytes]:
    return Response(encode(doc), status_code=doc.status, media_type=render.PROBLEM_JSON, headers=headers)


def stockd_error(_: Request, error: StockdError) -> Response[bytes]:  # type: ignore[type-arg]
    # Nothing was committed, so the client may simply try again shortly.
    headers = None
    if isinstance(error, Unavailable):
        headers = {"Retry-After": "1"}
    elif isinstance(error, RateLimited):
        headers = {"Retry-After": str(error.retry_after_seconds)}
    elif isinstance(error, Unauthorized):
        headers = {"WWW-Authenticate": 'Bearer realm="stockd"'}
    return problem_response(render.problem_of(error), headers=headers)


def validation_error(_: Request, error: ValidationException) -> Response[bytes]:  # type: ignore[type-arg]
    details = error.extra if isinstance(error.extra, list) else []
    errors = [
        {key: str(value) for key, value in item.items() if key in ("key", "message", "source")}
        for item in details
        if isinstance(item, dict)
    ]
    detail = "; ".join(f"{e.get('key') or 'body'}: {e.get('message')}" for e in errors) or error.detail
    return problem_response(render.problem("validation_error", detail, errors=errors or None))


def http_error(_: Request, error: HTTPException) -> Response[bytes]:  # type: ignore[type-arg]
    code = CODE_OF_STATUS.get(error.status_code)
    if code is None:
        # Any other client error the framework raises is a malformed request.
        code = "validation_error" if error.status_code < 500 else "internal_error"
    return problem_response(render.problem(code, error.detail), headers=error.headers)


def internal_error(_: Request, error: Exception) -> Response[bytes]:  # type: ignore[type-arg]
    log.exception("unhandled error", exc_info=error)
    return problem_response(
        render.problem("internal_error", "an internal error occurred; it has been logged")
    )


READ_PROBLEMS = {
    401: "unauthorized: no valid API key",
    403: "forbidden: the key lacks the scope or the warehouse",
    404: "not_found: an identifier names nothing",
    422: "validation_error: the request breaks a rule of API.md",
    429: "rate_limited: too many requests for this key (see Retry-After)",
    503: "unavailable: the database cannot be used right now; nothing was applied (see Retry-After)",
}
WRITE_PROBLEMS = READ_PROBLEMS | {
    409: "a conflict with the current state: out_of_stock, insufficient_stock, stale_quantity, invalid_state, "
    "reservation_expired, order_limit_exceeded, request_in_progress",
    413: "payload_too_large: the body is over 1 MiB",
}


def problem_responses(method: str) -> dict[int, ResponseSpec]:
    """The problem documents an operation can answer, for its OpenAPI description."""
    statuses = READ_PROBLEMS if method in ("GET", "HEAD") else WRITE_PROBLEMS
    return {
        status: ResponseSpec(
            data_container=Problem,
            description=description,
            media_type=render.PROBLEM_JSON,
            generate_examples=False,
        )
        for status, description in statuses.items()
    }


EXCEPTION_HANDLERS = {
    StockdError: stockd_error,
    ValidationException: validation_error,
    HTTPException: http_error,
    Exception: internal_error,
}
