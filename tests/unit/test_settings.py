"""Settings stockd refuses before it starts, with the reason."""

from __future__ import annotations

import pytest

from stockd.bootstrap import check_supported
from stockd.config import ConfigurationError, Settings

POSTGRES = "postgresql://postgres@127.0.0.1:5432/stockd"
REDIS = "redis://127.0.0.1:6379/0"


@pytest.mark.parametrize("prefix", ["stockd", "shop-eu.2", "a" * 64])
def test_a_redis_prefix_of_plain_characters_is_accepted(prefix: str) -> None:
    check_supported(Settings(database=POSTGRES, redis=REDIS, redis_prefix=prefix))


@pytest.mark.parametrize("prefix", ["stockd:eu", "stock*", "shop[1]", "", "a" * 65, "shop eu"])
def test_a_redis_prefix_that_could_name_another_deployments_keys_is_refused(prefix: str) -> None:
    """ "stockd" would take in "stockd:eu"'s keys (and a rebuild would delete them); globs match more."""
    with pytest.raises(ConfigurationError, match="prefix"):
        check_supported(Settings(database=POSTGRES, redis=REDIS, redis_prefix=prefix))
