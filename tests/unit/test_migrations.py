"""The schema revision start-up compares against is the one Alembic finds in the scripts."""

from stockd.store.migrate import HEAD_REVISION, alembic_head


def test_the_head_revision_constant_is_alembics_head() -> None:
    assert alembic_head() == HEAD_REVISION
