"""The initial schema: catalog, stock levels, reservations, the movement ledger, idempotency keys.

Times are stored as integer milliseconds since the Unix epoch (UTC): compact,
sortable, and identical on SQLite and PostgreSQL.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite only makes a column the auto-numbered rowid when its type is exactly INTEGER.
ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
MILLIS = sa.BigInteger


def upgrade() -> None:
    op.create_table(
        "products",
        sa.Column("sku", sa.String(64), primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("weight_grams", sa.BigInteger),
        sa.Column("dimensions_mm", sa.Text),
        sa.Column("created_at", MILLIS, nullable=False),
        sa.Column("updated_at", MILLIS, nullable=False),
    )
    op.create_table(
        "warehouses",
        sa.Column("warehouse_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("latitude", sa.Float, nullable=False),
        sa.Column("longitude", sa.Float, nullable=False),
        sa.Column("timezone", sa.Text, nullable=False),
        sa.Column("handling_hours", sa.Integer, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created_at", MILLIS, nullable=False),
        sa.Column("updated_at", MILLIS, nullable=False),
    )
    op.create_table(
        "stock_levels",
        sa.Column("sku", sa.String(64), primary_key=True),
        sa.Column("warehouse_id", sa.String(64), primary_key=True),
        sa.Column("quantity_on_hand", sa.BigInteger, nullable=False),
        sa.Column("quantity_reserved", sa.BigInteger, nullable=False),
        sa.Column("reorder_point", sa.BigInteger),
        sa.Column("reorder_quantity", sa.BigInteger),
        # Bumped by every change; the optimistic strategy writes only if it is unchanged.
        sa.Column("version", sa.BigInteger, nullable=False, server_default="0"),
        # The database itself refuses negative availability, whatever the code above it does.
        sa.CheckConstraint(
            "quantity_reserved >= 0 AND quantity_reserved <= quantity_on_hand",
            name="available_never_negative",
        ),
    )
    op.create_table(
        "reservations",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("order_id", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", MILLIS, nullable=False),
        sa.Column("expires_at", MILLIS, nullable=False),
        sa.Column("updated_at", MILLIS),
        # Lines as a JSON array of [sku, warehouse_id, quantity]: read and written whole, always.
        sa.Column("lines", sa.Text, nullable=False),
        # Clustered on the id: one B-tree to insert into per reservation, not two.
        sqlite_with_rowid=False,
    )
    op.create_index("reservations_by_order", "reservations", ["order_id", "created_at", "id"])
    op.create_index(
        "reservations_pending_by_expiry",
        "reservations",
        ["expires_at"],
        sqlite_where=sa.text("status = 'pending'"),
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_table(
        "movements",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("warehouse_id", sa.String(64), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("quantity", sa.BigInteger, nullable=False),
        sa.Column("on_hand_delta", sa.BigInteger, nullable=False),
        sa.Column("reserved_delta", sa.BigInteger, nullable=False),
        sa.Column("reference_type", sa.String(32)),
        sa.Column("reference_id", sa.String(128)),
        sa.Column("reason", sa.String(32)),
        sa.Column("created_at", MILLIS, nullable=False),
        sa.CheckConstraint("quantity > 0", name="movement_quantity_positive"),
    )
    op.create_index("movements_by_level", "movements", ["sku", "warehouse_id", "id"])
    op.create_index("movements_by_reference", "movements", ["reference_id", "id"])
    op.create_table(
        "idempotency_keys",
        sa.Column("principal", sa.String(64), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer, nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("created_at", MILLIS, nullable=False),
    )
    op.create_index("idempotency_keys_by_age", "idempotency_keys", ["created_at"])
    _make_movements_append_only()


def _make_movements_append_only() -> None:
    """The audit trail is append-only in the database, not by convention."""
    if op.get_bind().dialect.name == "sqlite":
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER movements_no_{action.lower()} BEFORE {action} ON movements "
                "BEGIN SELECT RAISE(ABORT, 'movements are append-only'); END"
            )
    else:
        op.execute(
            "CREATE FUNCTION stockd_refuse_movement_change() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'movements are append-only'; END $$"
        )
        op.execute(
            "CREATE TRIGGER movements_append_only BEFORE UPDATE OR DELETE ON movements "
            "FOR EACH STATEMENT EXECUTE FUNCTION stockd_refuse_movement_change()"
        )


def downgrade() -> None:
    for table in (
        "idempotency_keys",
        "movements",
        "reservations",
        "stock_levels",
        "warehouses",
        "products",
    ):
        op.drop_table(table)
    if op.get_bind().dialect.name != "sqlite":
        op.execute("DROP FUNCTION IF EXISTS stockd_refuse_movement_change()")
