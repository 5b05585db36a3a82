"""Migrations run on SQLite and on a real PostgreSQL, down and up again, and match the models."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from db.migrate import downgrade, upgrade
from db.models import Base
from db.session import normalize_url

TABLES = {"samples", "reviews", "users", "training_runs", "training_run_samples", "embeddings",
          "recent_predictions", "revoked_tokens", "label_changes", "champion_changes"}


def check_round_trip(url: str) -> None:
    upgrade(url)
    engine = create_engine(normalize_url(url))
    assert TABLES <= set(inspect(engine).get_table_names())
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == [], f"models and migrations differ: {diff}"
    downgrade(url, "base")
    assert not TABLES & set(inspect(engine).get_table_names())
    upgrade(url)
    assert TABLES <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_migrations_on_sqlite(tmp_path: Path) -> None:
    check_round_trip(f"sqlite:///{tmp_path / 'db.sqlite'}")


@pytest.mark.integration
def test_migrations_on_postgres(fresh_pg_url: str) -> None:
    check_round_trip(fresh_pg_url)
    engine = create_engine(normalize_url(fresh_pg_url))
    with engine.connect() as conn:  # the review queue's statistics follow it (0017)
        options = conn.execute(text("SELECT reloptions FROM pg_class WHERE relname = 'samples'")).scalar()
    engine.dispose()
    assert set(options or []) >= {"autovacuum_analyze_scale_factor=0.02", "autovacuum_vacuum_scale_factor=0.02",
                                  "autovacuum_vacuum_insert_scale_factor=0.02"}
