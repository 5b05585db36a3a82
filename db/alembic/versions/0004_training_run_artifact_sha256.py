"""training run artifact sha256

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 12:15:00

The sha256 of the ONNX file a run logged, recorded in Sprout's own database: the API loads a registered
version only if the downloaded artifact has this digest.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('training_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('artifact_sha256', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('training_runs', schema=None) as batch_op:
        batch_op.drop_column('artifact_sha256')
