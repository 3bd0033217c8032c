"""Ledger entries: which Redis Stream entries the persister has written, so none is written twice.

The Redis engine appends one stream entry per batch. The persister writes an
entry's effects and its id here in one transaction; a redelivered entry (a
replay, a second consumer claiming it) finds its id taken and changes nothing.
The highest id is also how far PostgreSQL has caught up with Redis.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ledger_entries",
        # A stream entry id "<milliseconds>-<sequence>", as two numbers so that they sort.
        sa.Column("stream_ms", sa.BigInteger, primary_key=True),
        sa.Column("stream_seq", sa.BigInteger, primary_key=True),
        sa.Column("persisted_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ledger_entries")
