"""training run out-of-fold probabilities

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 14:30:00

The winner's out-of-fold class probabilities of a run's cross-validation (sample ids and one row of
probabilities each), kept for label-issue detection; a column of its own, loaded only when asked for.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('training_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('out_of_fold', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('training_runs', schema=None) as batch_op:
        batch_op.drop_column('out_of_fold')
