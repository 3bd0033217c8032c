"""Transfers between warehouses: in transit from the moment they leave the source.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "transfers",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("from_warehouse_id", sa.String(64), nullable=False),
        sa.Column("to_warehouse_id", sa.String(64), nullable=False),
        sa.Column("quantity", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reference_id", sa.String(128)),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("received_at", sa.BigInteger),
        sa.CheckConstraint("quantity > 0", name="transfer_quantity_positive"),
        sa.CheckConstraint("from_warehouse_id <> to_warehouse_id", name="transfer_between_two_warehouses"),
    )
    # Stock in transit per SKU is summed over the transfers still on their way.
    op.create_index(
        "transfers_in_transit_by_sku",
        "transfers",
        ["sku", "to_warehouse_id"],
        sqlite_where=sa.text("status = 'in_transit'"),
        postgresql_where=sa.text("status = 'in_transit'"),
    )


def downgrade() -> None:
    op.drop_table("transfers")
