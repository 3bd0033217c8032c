"""The SQL engine: one transaction per batch, on SQLite (embedded) or PostgreSQL."""
