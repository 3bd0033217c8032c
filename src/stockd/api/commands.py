"""Answering a POST: idempotency, then the service, then the answer."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable

from litestar import Request, Response

from stockd.api import render
from stockd.api.params import header_value
from stockd.api.schemas import encode
from stockd.domain.access import ANONYMOUS, Principal
from stockd.domain.book import Outcome
from stockd.domain.commands import Command
from stockd.domain.errors import InvalidRequest, StockdError
from stockd.engine.base import StoredResponse
from stockd.service import StockService

IDEMPOTENCY_HEADER = b"idempotency-key"
MAX_IDEMPOTENCY_KEY_LENGTH = 255


class HttpClaim:
    """An Idempotency-Key and how to answer the request it came with."""

    __slots__ = ("fingerprint", "key", "principal", "response", "success_status")

    def __init__(self, principal: str, key: str, fingerprint: str, success_status: int) -> None:
        self.principal = principal
        self.key = key
        self.fingerprint = fingerprint
        self.success_status = success_status
        self.response: StoredResponse | None = None

    def record(self, outcome: Outcome | StockdError) -> StoredResponse:
        self.response = render.outcome_response(outcome, self.success_status)
        return self.response


def claim_of(request: Request, body: object, success_status: int) -> HttpClaim | None:  # type: ignore[type-arg]
    key = header_value(request, IDEMPOTENCY_HEADER)
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH:
        raise InvalidRequest("Idempotency-Key must be 1 to 255 characters")
    # The decoded body, re-encoded, is the request's identity: whitespace, key
    # order and ignored unknown fields do not make two requests different.
    digest = hashlib.sha256(request.method.encode())
    digest.update(request.scope["path"].encode())
    digest.update(encode(body))
    # Keys are scoped by caller: two keys may use the same Idempotency-Key independently.
    principal: Principal | None = request.state.get("principal")
    return HttpClaim(
        ANONYMOUS if principal is None else principal.id, key, digest.hexdigest(), success_status
    )


async def run_command(
    service: StockService,
    request: Request,  # type: ignore[type-arg]
    command: Command,
    body: object,
    success_status: int = 200,
) -> Response[bytes]:
    claim = claim_of(request, body, success_status)
    result = await service.execute(command, claim)
    if isinstance(result, StoredResponse):
        response = result  # a repeat: the first answer, byte for byte
    elif claim is not None and claim.response is not None:
        response = claim.response  # rendered once, when it was stored
    else:
        response = render.outcome_response(result, success_status)
    media_type = render.PROBLEM_JSON if response.status_code >= 400 else render.JSON
    return Response(response.body, status_code=response.status_code, media_type=media_type)


async def answer_once(
    service: StockService,
    request: Request,  # type: ignore[type-arg]
    body: object,
    answer: Callable[[], Awaitable[object]],
    success_status: int = 200,
) -> Response[bytes]:
    """A POST that is not a stock command: with an Idempotency-Key, its first answer is kept."""

    async def rendered() -> StoredResponse:
        return StoredResponse(success_status, encode(await answer()))

    claim = claim_of(request, body, success_status)
    response = await (rendered() if claim is None else service.remember(claim, rendered))
    return Response(response.body, status_code=response.status_code, media_type=render.JSON)
