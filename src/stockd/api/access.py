"""Who may call what: the bearer key, its scope, and the per-caller rate limit, before any handler.

Every ``/v1`` route needs a scope: the one named in its ``opt["scope"]``, else
``read`` for a GET and ``admin`` for anything else (so a route nobody thought
about is closed, not open). Object-level checks — which warehouses a limited
key may touch — happen in the routes, where the objects are known.
"""

from __future__ import annotations

from litestar import Request

from stockd.api.params import Service, header_value
from stockd.api.ratelimit import RateLimiter
from stockd.config import is_loopback_address
from stockd.domain.access import EVERYONE, Principal, Scope
from stockd.domain.errors import Unauthorized
from stockd.keyring import KeyRing

PROTECTED_PREFIX = "/v1/"
TEST_CLIENT_HOST = "testclient"
"""Litestar's in-process test client: no socket, so it can only be this process itself."""


def is_loopback(host: str | None) -> bool:
    return host is not None and (host == TEST_CLIENT_HOST or is_loopback_address(host))


def required_scope(request: Request) -> Scope:  # type: ignore[type-arg]
    scope: Scope | None = request.route_handler.opt.get("scope")
    if scope is not None:
        return scope
    return "read" if request.method in ("GET", "HEAD") else "admin"


def bearer_token(request: Request) -> str | None:  # type: ignore[type-arg]
    header = header_value(request, b"authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <key>'")
    return token.strip()


async def identify(request: Request, keyring: KeyRing) -> Principal:  # type: ignore[type-arg]
    token = bearer_token(request)
    if token is not None:
        # A key that was sent is always checked, even before keys are enforced.
        return await keyring.authenticate(token)
    if await keyring.enforcing():
        raise Unauthorized("this request needs an 'Authorization: Bearer <key>' header")
    host = request.client.host if request.client else None
    if not is_loopback(host):
        raise Unauthorized("no API key exists yet, so only clients on the loopback interface are answered")
    return EVERYONE


async def authorize(request: Request) -> None:  # type: ignore[type-arg]
    """The before-request check of every ``/v1`` route: authenticate, rate-limit, check the scope."""
    if not request.url.path.startswith(PROTECTED_PREFIX):
        return
    keyring: KeyRing = request.app.state.keyring
    limiter: RateLimiter | None = request.app.state.rate_limiter
    client = f"ip:{request.client.host}" if request.client else "ip:unknown"
    try:
        principal = await identify(request, keyring)
    except Unauthorized:
        # Failed attempts count against the client's address, which slows key guessing.
        if limiter is not None:
            await limiter.hit(client)
        raise
    if limiter is not None:
        await limiter.hit(f"key:{principal.id}" if principal is not EVERYONE else client)
    principal.require(required_scope(request))
    request.state.principal = principal


def provide_principal(request: Request, service: Service) -> Principal:  # type: ignore[type-arg]
    """The caller that ``authorize`` identified.

    ``service`` is declared only to order the two: Litestar resolves
    independent dependencies of a handler concurrently, in an anyio task group
    per request, which cost about a third of a reservation's CPU time over
    HTTP. A dependency on ``service`` makes it resolve them one after the other.
    """
    principal: Principal = request.state.principal
    return principal
