"""training_run_samples.sample_id indexed: deleting a sample looks up its lineage rows (the foreign key's cascade)

Revision ID: 0016
Revises: 0015
Create Date: 2027-02-08 10:00:00

The lineage's primary key is led by ``run_id``, so without this index every deleted sample (``sprout gc``'s old
rejected samples) made the database scan the whole lineage table for rows to cascade to: ``sprout gc --apply`` on
100,000 samples (20,000 old rejected ones, 200,000 expired lineage rows, 99,500 predictions beyond the window)
took 265 s on SQLite without it and 13 s with it (the rejected samples' part: 3.5 s).
"""
from collections.abc import Sequence

from alembic import op

revision: str = '0016'
down_revision: str | None = '0015'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index('ix_training_run_samples_sample_id', 'training_run_samples', ['sample_id'])


def downgrade() -> None:
    op.drop_index('ix_training_run_samples_sample_id', table_name='training_run_samples')
