"""Contract-suite fixtures: every response any contract test receives is checked for a 5xx."""

from __future__ import annotations

import httpx
import pytest

from tests.contract.support import Client


@pytest.fixture(autouse=True)
def never_a_server_error(client: Client) -> None:
    """API.md: a 5xx is always a bug. Fail the test on the first one, whatever it was checking."""

    async def check(response: httpx.Response) -> None:
        if response.status_code >= 500:
            await response.aread()
            raise AssertionError(
                f"{response.request.method} {response.request.url} answered "
                f"{response.status_code}: {response.text}"
            )

    hooks = client.event_hooks
    client.event_hooks = {"request": hooks["request"], "response": [*hooks["response"], check]}
