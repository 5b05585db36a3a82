"""recent predictions: the bounded window of live traffic

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 09:00:00

The newest served predictions (label, calibrated confidence, the backbone embedding), shared by every API
worker and kept across restarts; the writer prunes it to ``SPROUT_DRIFT_WINDOW`` rows. The drift report
compares it with the champion's training set.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'recent_predictions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('model_version', sa.String(length=32), nullable=True),
        sa.Column('backbone', sa.String(length=64), nullable=True),
        sa.Column('label', sa.String(length=64), nullable=False),
        sa.Column('confidence', sa.Float(), nullable=False),
        sa.Column('embedding', sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('recent_predictions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_recent_predictions_model_version'), ['model_version'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('recent_predictions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_recent_predictions_model_version'))
    op.drop_table('recent_predictions')
