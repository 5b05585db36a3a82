"""users.session_generation: a new password or a disabled account ends the sessions it had

Revision ID: 0010
Revises: 0009
Create Date: 2027-01-05 09:00:00

Each login token carries its user's session generation (claim ``gen``); ``sprout users set-password`` and
``disable`` move it on, and the API refuses a token of an earlier generation (re-enabling brings none back).
Tokens issued before this column existed carry none: they count as generation 0, the column's start.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('session_generation', sa.Integer(), server_default='0', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('session_generation')
