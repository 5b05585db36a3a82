"""Services on a migrated database: what ``sprout db upgrade`` does before anything else runs."""

from __future__ import annotations

from db.migrate import upgrade
from model.core.settings import Settings
from model.runtime.services import Services


def migrated_services(settings: Settings) -> Services:
    """Apply the migrations (as ``make up`` and the init job do), then connect."""
    settings.home.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_database_url)
    return Services.from_settings(settings)
