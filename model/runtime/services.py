"""The objects every entry point needs, built once from the settings: DB, object store, registry."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from db.migrate import check_schema
from db.session import make_engine, make_sessionmaker
from model.core.settings import Settings
from model.data.storage import ObjectStore, make_store
from model.serving.registry import Registry


@dataclass
class Services:
    """Settings plus the database, object store and model registry they describe.

    Building it never changes the database: migrations are ``sprout db upgrade``'s job.
    """

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    store: ObjectStore
    _registry: Registry | None = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings, *, check: bool = True) -> Services:
        """Connect everything; with ``check`` refuse a database whose schema is not at the latest revision."""
        if settings.database_url is None or settings.s3_endpoint is None:
            settings.home.mkdir(parents=True, exist_ok=True)
        engine = make_engine(settings.resolved_database_url)
        if check:
            try:
                check_schema(engine)
            except BaseException:
                engine.dispose()
                raise
        return cls(settings=settings, engine=engine, sessions=make_sessionmaker(engine), store=make_store(settings))

    @cached_property
    def registry(self) -> Registry:
        return self._registry or Registry.from_settings(self.settings)

    def session(self) -> Session:
        return self.sessions()

    def close(self) -> None:
        self.engine.dispose()
