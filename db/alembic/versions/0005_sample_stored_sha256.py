"""sample stored sha256

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 14:40:00

Uploads are stored without their metadata, so the stored object's bytes differ from the upload whose sha256
names the sample: ``stored_sha256`` is the digest of what the store holds (fsck restores only a copy that has
it). Older rows stored the upload itself (NULL: the stored digest is ``sha256``).
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('samples', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stored_sha256', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('samples', schema=None) as batch_op:
        batch_op.drop_column('stored_sha256')
