"""Services on a migrated database: what ``sprout db upgrade`` does before anything else runs."""

from __future__ import annotations

from db.migrate import upgrade
from model.core.settings import Settings
from model.runtime.services import Services

TEST_SPLIT_KEY = "sprout-test-split-key"  # tests get the same splits on every run, as an installation does


def migrated_services(settings: Settings) -> Services:
    """Apply the migrations (as ``make up`` and the init job do), then connect."""
    settings.home.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_database_url, split_key=settings.split_key.get_secret_value() if settings.split_key
            else TEST_SPLIT_KEY)
    return Services.from_settings(settings)
