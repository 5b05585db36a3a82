"""samples indexed by (status, id): the oldest and newest orders of one status walk one index on PostgreSQL

Revision ID: 0018
Revises: 0017
Create Date: 2027-02-09 10:00:00

The index on ``status`` alone keeps equal statuses in heap order on PostgreSQL (SQLite's ends in the rowid, the
id, already), so ``status = 'pending' ORDER BY id`` had two plans, both growing with the table: the primary key
walked from the oldest sample, filtering out every approved one before the first pending (the queue is the newest
samples: 90,000 rows filtered, 32.5 ms a page at 100,000 samples against 10.6 ms at 1,000), or every pending row
sorted. ``(status, id)`` serves both orders and every count by status (it replaces the ``status`` index).
"""
from collections.abc import Sequence

from alembic import op

revision: str = '0018'
down_revision: str | None = '0017'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index('ix_samples_status_id', 'samples', ['status', 'id'])
    op.drop_index('ix_samples_status', table_name='samples')


def downgrade() -> None:
    op.create_index('ix_samples_status', 'samples', ['status'])
    op.drop_index('ix_samples_status_id', table_name='samples')
