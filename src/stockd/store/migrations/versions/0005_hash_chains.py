"""Hash chains: each movement's hash, and the newest hash of each level.

Movements written before this revision carry no hash; a level's chain starts
at its first hashed movement.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("movements", sa.Column("hash", sa.String(64)))
    op.add_column("stock_levels", sa.Column("last_hash", sa.String(64)))


def downgrade() -> None:
    with op.batch_alter_table("stock_levels") as batch:
        batch.drop_column("last_hash")
    with op.batch_alter_table("movements") as batch:
        batch.drop_column("hash")
