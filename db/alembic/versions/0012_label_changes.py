"""label_changes: an admin's rename, merge or retirement of a label, and the reviews rows it wrote

Revision ID: 0012
Revises: 0011
Create Date: 2027-01-14 09:00:00

One row per taxonomy change (``sprout labels rename|merge|retire``, ``POST /admin/labels/{label}/...``): the label,
the label it became (NULL: retired), the admin and how many samples changed. Every sample it changed gets a
``reviews`` row (action ``rename``, ``merge`` or ``retire``) pointing at it through ``reviews.label_change_id``.
Applied in order, the rows map the champion's output columns to today's labels and stale names to current ones.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'label_changes',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.Enum('rename', 'merge', 'retire', name='label_change_kind', native_enum=False,
                                  length=16), nullable=False),
        sa.Column('label', sa.String(length=64), nullable=False),
        sa.Column('into', sa.String(length=64), nullable=True),
        sa.Column('changed_by', sa.String(length=64), nullable=False),
        sa.Column('approved', sa.Integer(), nullable=False),
        sa.Column('pending', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('label_changes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_label_changes_label'), ['label'], unique=False)
        batch_op.create_index(batch_op.f('ix_label_changes_created_at'), ['created_at'], unique=False)
    with op.batch_alter_table('reviews', schema=None) as batch_op:
        batch_op.add_column(sa.Column('label_change_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_reviews_label_change_id'), ['label_change_id'], unique=False)
        batch_op.create_foreign_key('fk_reviews_label_change_id_label_changes', 'label_changes',
                                    ['label_change_id'], ['id'], ondelete='SET NULL')


def downgrade() -> None:
    with op.batch_alter_table('reviews', schema=None) as batch_op:
        batch_op.drop_constraint('fk_reviews_label_change_id_label_changes', type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_reviews_label_change_id'))
        batch_op.drop_column('label_change_id')
    with op.batch_alter_table('label_changes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_label_changes_created_at'))
        batch_op.drop_index(batch_op.f('ix_label_changes_label'))
    op.drop_table('label_changes')
