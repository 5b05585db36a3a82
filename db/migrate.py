"""Run Alembic migrations programmatically, and check that a database is at the latest revision.

Migrations run only when asked (``sprout db upgrade``, ``make up``, the init job, test fixtures);
everything else calls ``check_schema`` and refuses to work on a database that is behind.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from db.session import normalize_url

ALEMBIC_DIR = Path(__file__).parent / "alembic"


class SchemaOutOfDateError(RuntimeError):
    """The database is not at the revision this code expects."""


def alembic_config(url: str, *, split_key: str | None = None) -> Config:
    """An Alembic config bound to ``url`` and this package's migration scripts."""
    cfg = Config()
    cfg.set_main_option("script_location", str(ALEMBIC_DIR))
    cfg.attributes["url"] = normalize_url(url)
    cfg.attributes["split_key"] = split_key
    return cfg


def upgrade(url: str, revision: str = "head", *, split_key: str | None = None) -> None:
    """Upgrade the database at ``url`` to ``revision``; ``split_key`` seeds a new database's split key
    (default: random). An existing key is never changed."""
    command.upgrade(alembic_config(url, split_key=split_key), revision)


def downgrade(url: str, revision: str) -> None:
    """Downgrade the database at ``url`` to ``revision``."""
    command.downgrade(alembic_config(url), revision)


def head_revision() -> str:
    """The latest revision of the migration scripts."""
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None when it was never migrated)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def check_schema(engine: Engine) -> None:
    """Raise SchemaOutOfDateError, with the command that fixes it, unless the database is at head."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        found = f"at revision {current}" if current else "empty (never migrated)"
        raise SchemaOutOfDateError(
            f"The database is {found}; this version of Sprout needs revision {head}. "
            "Run `sprout db upgrade` first.")
