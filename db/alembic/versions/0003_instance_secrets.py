"""instance secrets: the key of the split hash

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 11:50:00

New samples get their train/val/test split from an HMAC of their content hash under this key, so an
uploader cannot choose test-set membership by appending bytes. Stored splits never change.
"""
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import context, op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    table = op.create_table(
        'instance_secrets',
        sa.Column('name', sa.String(length=64), primary_key=True),
        sa.Column('value', sa.String(length=256), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    )
    key = context.config.attributes.get('split_key') or secrets.token_hex(32)
    op.bulk_insert(table, [{'name': 'split_key', 'value': key, 'created_at': datetime.now(UTC)}])


def downgrade() -> None:
    op.drop_table('instance_secrets')
