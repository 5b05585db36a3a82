"""champion_changes: who made which version the champion, when, and which it replaced

Revision ID: 0013
Revises: 0012
Create Date: 2027-01-21 09:00:00

One row per change of the champion alias: a training run's promotion (``changed_by`` "run N"), or a person's
promotion or rollback (``POST /admin/models/{version}/promote``: the admin's name; ``sprout rollback``: "command
line"). ``/models`` returns the latest rows; the Models page says who put the serving model there and when.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'champion_changes',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.Enum('run', 'promoted', 'rollback', name='champion_change_kind', native_enum=False,
                                  length=16), nullable=False),
        sa.Column('version', sa.String(length=32), nullable=False),
        sa.Column('previous', sa.String(length=32), nullable=True),
        sa.Column('changed_by', sa.String(length=64), nullable=False),
        sa.Column('run_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('champion_changes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_champion_changes_created_at'), ['created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('champion_changes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_champion_changes_created_at'))
    op.drop_table('champion_changes')
