"""Settings of a running stockd, from options or ``STOCKD_*`` environment variables."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_DATA_DIR = Path("data")
SQLITE_FILE = "stockd.db"


@lru_cache(maxsize=1024)  # asked for every anonymous request; parsing the address is not free
def is_loopback_address(host: str) -> bool:
    """Is ``host`` (an address, or ``localhost``) on the loopback interface?"""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def without_password(url: str) -> str:
    """``url`` with its password, if it has one, replaced by ``***``.

    The standard library's URL parsing, not SQLAlchemy's: ``stockd serve`` prints
    this at start-up, and importing SQLAlchemy for it would cost ~0.4 s.
    """
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


class ConfigurationError(Exception):
    """The settings cannot work; the message says what to change."""


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    data_dir: Path = DEFAULT_DATA_DIR
    database: str | None = None
    redis: str | None = None
    redis_prefix: str = "stockd"
    """The Redis engine's keys all start with this (several stockd can share one Redis)."""
    strategy: str = "batched"
    admin_key: str | None = None
    """A full admin key accepted at start-up; never stored."""
    max_units_per_order: int | None = None
    """The most units of one SKU one order may hold in pending reservations; None: no cap."""
    rate_limit: int | None = None
    """Requests per second per key (or per client address without one); None: unlimited."""

    @property
    def database_url(self) -> str:
        return self.database or f"sqlite:///{self.data_dir / SQLITE_FILE}"

    @property
    def shown_database_url(self) -> str:
        """The database URL with any password masked, for logs and terminals."""
        return without_password(self.database_url)

    @property
    def is_postgresql(self) -> bool:
        return self.database_url.startswith(("postgresql:", "postgres:", "postgresql+asyncpg:"))

    def sqlite_path(self) -> Path:
        """The SQLite file a ``sqlite:///path`` URL names (relative paths as given)."""
        url = self.database_url
        prefix = "sqlite:///"
        if not url.startswith(prefix) or len(url) == len(prefix):
            raise ConfigurationError(f"not a sqlite:///path URL: {url!r}")
        return Path(url[len(prefix) :])
