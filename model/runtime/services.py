"""The objects every entry point needs, built once from the settings: DB, object store, registry."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from db.migrate import check_schema
from db.session import make_engine, make_sessionmaker
from model.core import faults
from model.core.errors import ArtifactRejectedError
from model.core.security import secure_state_dir
from model.core.settings import Settings
from model.data.near_duplicates import NearDuplicateFinder, NearDuplicateRule
from model.data.storage import ObjectStore, make_store
from model.serving.registry import Registry, VersionInfo

log = logging.getLogger(__name__)


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
            secure_state_dir(settings.home)
        faults.arm(settings.crash_at)
        engine = make_engine(settings.resolved_database_url, timeout=settings.database_timeout_seconds)
        if check:
            try:
                check_schema(engine)
            except BaseException:
                engine.dispose()
                raise
        return cls(settings=settings, engine=engine, sessions=make_sessionmaker(engine), store=make_store(settings))

    @cached_property
    def near_duplicates(self) -> NearDuplicateFinder:
        """The near-duplicate finder of this process (its indexes sync from the database)."""
        return NearDuplicateFinder(NearDuplicateRule(self.settings.near_dup_threshold,
                                                     self.settings.near_dup_max_hash_distance))

    def warm_near_duplicates(self) -> int:
        """Sync the champion backbone's near-duplicate index now, so the first upload after a start does not wait
        for 100,000 embeddings to be read (and the index trained); the rows it holds (0 before a champion)."""
        from db import queries

        with self.session() as session:
            run = queries.last_promoted_run(session)
            if run is None:
                return 0
            index = self.near_duplicates.index(run.backbone)
            index.sync(session)
            return len(index)

    @cached_property
    def registry(self) -> Registry:
        return self._registry or Registry.from_settings(self.settings)

    def session(self) -> Session:
        return self.sessions()

    def verify_artifact(self, version: str, path: Path) -> None:
        """ArtifactRejectedError unless ``path`` is the ONNX file a Sprout run logged for ``version``
        (same sha256 as recorded in Sprout's database at training time).

        A file verified once is marked (``<file>.verified``, beside it in the local cache): while the database
        is unreachable, only such a file is served, so serving survives a database outage without trusting
        anything the registry says on its own.
        """
        from sqlalchemy.exc import InterfaceError, OperationalError
        from sqlalchemy.exc import TimeoutError as PoolTimeoutError

        from db.queries import expected_artifact

        actual = hashlib.sha256(path.read_bytes()).hexdigest()
        marker = path.with_name(path.name + ".verified")
        try:
            with self.session() as session:
                known, expected = expected_artifact(session, version=version)
        except (OperationalError, InterfaceError, PoolTimeoutError):
            if marker.exists() and marker.read_text().strip() == actual:
                log.warning("database unavailable: serving version %s, verified earlier", version)
                return
            raise
        if not known:
            raise ArtifactRejectedError(f"version {version} was not registered by a Sprout training run")
        if expected is None:
            log.warning("version %s predates artifact digests: served unverified", version)
        elif actual != expected:
            raise ArtifactRejectedError(f"version {version}: the artifact's sha256 {actual[:12]}… differs from "
                                        f"the {expected[:12]}… recorded when it was trained")
        marker.write_text(actual)

    def model_file(self, version: str | None = None) -> tuple[VersionInfo, Path]:
        """The ONNX file of the champion (default) or ``version``, verified as the API verifies what it serves:
        ArtifactRejectedError for a version Sprout did not train or whose artifact changed since."""
        info, path = self.registry.model_file(version)
        self.verify_artifact(info.version, path)
        return info, path

    def check(self, *, timeout: float = 1.5) -> dict[str, str]:
        """``{"database": ..., "storage": ...}``: "ok", "unavailable: <error>" or "no answer within N s".

        The checks run in parallel daemon threads, so the answer comes within ``timeout`` even when a
        dependency hangs (a frozen server keeps its thread until its own bounded timeout).
        """
        from db.queries import ping

        def database() -> None:
            with self.session() as session:
                ping(session)

        probes = {"database": database, "storage": self.store.ping}
        results: dict[str, str] = {}

        def run(name: str, probe: Callable[[], None]) -> None:
            try:
                probe()
                results[name] = "ok"
            except Exception as exc:  # any driver or store error means "not ready"
                results[name] = f"unavailable: {type(exc).__name__}"

        threads = [threading.Thread(target=run, args=item, daemon=True, name=f"check-{item[0]}")
                   for item in probes.items()]
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return {name: results.get(name, f"no answer within {timeout:g} s") for name in probes}

    def close(self) -> None:
        self.engine.dispose()
