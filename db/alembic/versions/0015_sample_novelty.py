"""samples.novelty: how far an image lies from what the serving champion trained on, kept at submission

Revision ID: 0015
Revises: 0014
Create Date: 2027-02-08 09:00:00

``1 - best cosine`` of the image's embedding to the champion's train+val embeddings, computed when the image was
submitted with a prediction (as its confidence is); NULL without one. The review queue's ``novelty`` order sorts
by it in the database (an index on status and novelty) instead of scoring every pending image on every request.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0015'
down_revision: str | None = '0014'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('samples') as batch:
        batch.add_column(sa.Column('novelty', sa.Float(), nullable=True))
    op.create_index('ix_samples_status_novelty', 'samples', ['status', 'novelty'])
    op.create_index('ix_samples_status_confidence', 'samples', ['status', 'confidence'])


def downgrade() -> None:
    op.drop_index('ix_samples_status_confidence', table_name='samples')
    op.drop_index('ix_samples_status_novelty', table_name='samples')
    with op.batch_alter_table('samples') as batch:
        batch.drop_column('novelty')
