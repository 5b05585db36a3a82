"""sample near-duplicates and perceptual hash

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 17:10:00

A sample's perceptual hash (pHash, 16 hex digits), the near-duplicates found when it arrived
(``[{"id", "similarity"}, ...]``, most similar first) and its near-duplicate group (the id of the group's
first sample; a member takes its group's split). ``source`` gains ``capture`` (no schema change: the
enum is stored as a string).
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('samples', schema=None) as batch_op:
        batch_op.add_column(sa.Column('phash', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('near_duplicates', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('duplicate_group', sa.Integer(), nullable=True))
        batch_op.create_index('ix_samples_duplicate_group', ['duplicate_group'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('samples', schema=None) as batch_op:
        batch_op.drop_index('ix_samples_duplicate_group')
        batch_op.drop_column('duplicate_group')
        batch_op.drop_column('near_duplicates')
        batch_op.drop_column('phash')
