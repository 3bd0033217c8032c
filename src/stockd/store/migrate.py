"""Schema migrations through Alembic, applied at start-up on every database."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"

HEAD_REVISION = "0007"
"""The newest revision in ``migrations/versions``.

Start-up compares a database's revision with this, so an up-to-date database
opens without importing Alembic and SQLAlchemy (most of a second of every
server start and every CLI command). ``tests/unit/test_migrations.py`` checks
it against Alembic's own answer, so a new revision cannot forget it.
"""


def alembic_config(sqlalchemy_url: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser treats % as interpolation; URLs may contain escaped characters.
    config.set_main_option("sqlalchemy.url", sqlalchemy_url.replace("%", "%%"))
    return config


def upgrade_to_head(sqlalchemy_url: str) -> None:
    """Bring the database's schema to the newest revision (a no-op when it is already there)."""
    from alembic import command

    command.upgrade(alembic_config(sqlalchemy_url), "head")


def alembic_head() -> str | None:
    """The newest revision as Alembic reads it from the migration scripts."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
