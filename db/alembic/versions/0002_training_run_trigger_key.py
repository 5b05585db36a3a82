"""training run trigger key

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 16:51:40.700807
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('training_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('trigger_key', sa.String(length=250), nullable=True))
        batch_op.create_unique_constraint('uq_training_runs_trigger_key', ['trigger_key'])


def downgrade() -> None:
    with op.batch_alter_table('training_runs', schema=None) as batch_op:
        batch_op.drop_constraint('uq_training_runs_trigger_key', type_='unique')
        batch_op.drop_column('trigger_key')

