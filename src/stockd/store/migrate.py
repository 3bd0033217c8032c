"""Schema migrations through Alembic, applied at start-up on every database."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(sqlalchemy_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser treats % as interpolation; URLs may contain escaped characters.
    config.set_main_option("sqlalchemy.url", sqlalchemy_url.replace("%", "%%"))
    return config


def upgrade_to_head(sqlalchemy_url: str) -> None:
    """Bring the database's schema to the newest revision (a no-op when it is already there)."""
    command.upgrade(alembic_config(sqlalchemy_url), "head")


@cache
def head_revision() -> str | None:
    """The newest revision this version of stockd ships (read once per process)."""
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
