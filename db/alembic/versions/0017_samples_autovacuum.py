"""samples analysed and vacuumed sooner on PostgreSQL: the review queue is a small, moving part of a large table

Revision ID: 0017
Revises: 0016
Create Date: 2027-02-09 09:00:00

PostgreSQL's defaults analyse a table after 10% of its rows changed and vacuum it after 20% were inserted or
updated (a review is an update): at 100,000 samples that is 10,000 uploads — the whole review queue
(``SPROUT_MAX_PENDING_SAMPLES``). Until then the
planner believes there are almost no pending samples and sorts them all for a review page (2.3 ms for 10,000
against 0.05 ms along the ``ix_samples_status_*`` index), and the new rows are not marked all-visible, so the
counts visit the heap (2.1 ms against 1.2 ms). At 2% (plus the default 50 and 1,000 rows) statistics and the
visibility map follow the queue. SQLite has no such settings; nothing changes there.
"""
from collections.abc import Sequence

from alembic import op

revision: str = '0017'
down_revision: str | None = '0016'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SETTINGS = ("autovacuum_analyze_scale_factor", "autovacuum_vacuum_scale_factor",
            "autovacuum_vacuum_insert_scale_factor")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE samples SET ({', '.join(f'{name} = 0.02' for name in SETTINGS)})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE samples RESET ({', '.join(SETTINGS)})")
