"""samples.predicted_unfamiliar: the prediction at submission called the image unfamiliar

Revision ID: 0011
Revises: 0010
Create Date: 2027-01-12 09:00:00

A model trained since issue 23 tells when an image looks like nothing it was trained on; a pending sample keeps
that verdict of its prediction, and the review queue's default order offers such samples first. NULL: no
prediction, or one made before this column (or by a model without the unfamiliarity score).
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('samples', schema=None) as batch_op:
        batch_op.add_column(sa.Column('predicted_unfamiliar', sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('samples', schema=None) as batch_op:
        batch_op.drop_column('predicted_unfamiliar')
