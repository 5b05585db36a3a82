"""The objects every entry point needs, built once from the settings: DB, object store, registry."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from db.migrate import upgrade
from db.session import make_engine, make_sessionmaker
from model.registry import Registry
from model.settings import Settings
from model.storage import ObjectStore, make_store


@dataclass
class Services:
    """Settings plus the database, object store and model registry they describe."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    store: ObjectStore
    _registry: Registry | None = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings, *, migrate: bool = True) -> Services:
        """Connect everything; with ``migrate`` bring the database schema to the latest revision."""
        if settings.database_url is None or settings.s3_endpoint is None:
            settings.home.mkdir(parents=True, exist_ok=True)
        url = settings.resolved_database_url
        if migrate:
            upgrade(url)
        engine = make_engine(url)
        return cls(settings=settings, engine=engine, sessions=make_sessionmaker(engine),
                   store=make_store(settings))

    @cached_property
    def registry(self) -> Registry:
        return self._registry or Registry.from_settings(self.settings)

    def session(self) -> Session:
        return self.sessions()

    def close(self) -> None:
        self.engine.dispose()
