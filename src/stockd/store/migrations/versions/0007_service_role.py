"""The service's PostgreSQL role: everything the service does, and no way to rewrite the ledger.

A superuser or the tables' owner ignores grants, so a service connected as
either could change history whatever the triggers say (an owner can drop a
trigger). This revision creates the group role ``stockd_service`` (NOLOGIN)
and grants it exactly what stockd's code does: reading and writing the working
tables, but only SELECT and INSERT on the append-only ones (``movements``,
``ledger_entries``), and only SELECT on ``alembic_version``. No TRUNCATE, no
DDL. The service then connects as a login role that is a member of it::

    CREATE ROLE shop_inventory LOGIN PASSWORD '…' IN ROLE stockd_service;

while migrations run as the owner (``stockd migrate``). The grants live in one
function, ``stockd_grant_service_role()``, so a later revision that adds a table
calls it again, and an owner without CREATEROLE can create the role once and
call it by hand (the migration only logs a notice in that case).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Rows here are history: appended, never changed or removed.
APPEND_ONLY_TABLES = ("movements", "ledger_entries")

GRANT_FUNCTION = f"""
CREATE OR REPLACE FUNCTION stockd_grant_service_role() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'stockd_service') THEN
        BEGIN
            CREATE ROLE stockd_service NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- another database of this cluster created it at the same moment
        END;
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO stockd_service', current_schema());
    EXECUTE format(
        'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %I TO stockd_service', current_schema()
    );
    EXECUTE format('GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA %I TO stockd_service', current_schema());
    REVOKE UPDATE, DELETE ON {", ".join(APPEND_ONLY_TABLES)} FROM stockd_service;
    REVOKE INSERT, UPDATE, DELETE ON alembic_version FROM stockd_service;
    REVOKE UPDATE, DELETE, TRUNCATE ON {", ".join(APPEND_ONLY_TABLES)} FROM PUBLIC;
END $$
"""

GRANT_UNLESS_FORBIDDEN = """
DO $$
BEGIN
    PERFORM stockd_grant_service_role();
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'stockd: no privilege to create the role stockd_service; create it '
        '(CREATE ROLE stockd_service NOLOGIN) and run SELECT stockd_grant_service_role()';
END $$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return  # SQLite has no roles: whoever can open the file owns it.
    op.execute(GRANT_FUNCTION)
    op.execute(GRANT_UNLESS_FORBIDDEN)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    # The role is the cluster's, shared by every stockd database on it: only this database's grants go.
    op.execute(
        "DO $$ BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'stockd_service') THEN "
        "EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA %I FROM stockd_service', current_schema()); "
        "EXECUTE format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA %I FROM stockd_service', current_schema()); "
        "EXECUTE format('REVOKE USAGE ON SCHEMA %I FROM stockd_service', current_schema()); "
        "END IF; END $$"
    )
    op.execute("DROP FUNCTION IF EXISTS stockd_grant_service_role()")
