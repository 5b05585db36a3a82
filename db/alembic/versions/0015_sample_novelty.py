"""samples.novelty: how far an image lies from what the serving champion trained on, kept at submission

Revision ID: 0015
Revises: 0014
Create Date: 2027-02-08 09:00:00

``1 - best cosine`` of the image's embedding to the champion's train+val embeddings, computed when the image was
submitted with a prediction (as its confidence is); -1 without one (and for every row before this revision). The review queue's ``novelty`` order sorts
by it in the database (an index on status and novelty) instead of scoring every pending image on every request.
The other review orders get their keys as columns too, filled in here for existing rows: ``uncertainty_tier``
(unfamiliar first, unscored first in each group; then ``confidence``) and ``contradiction`` (the model's confidence
where it contradicts the submitter's suggestion, else -1), each with an index led by status; and status with label
and split serves the counts of ``/admin/stats`` from the index alone.
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
        batch.add_column(sa.Column('uncertainty_tier', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('contradiction', sa.Float(), nullable=True))
    op.execute("UPDATE samples SET novelty = -1.0")
    op.execute("UPDATE samples SET uncertainty_tier = "
               "(CASE WHEN predicted_unfamiliar IS NOT NULL AND predicted_unfamiliar THEN 0 ELSE 2 END) "
               "+ (CASE WHEN confidence IS NULL THEN 0 ELSE 1 END)")
    op.execute("UPDATE samples SET contradiction = CASE WHEN suggested_label IS NOT NULL AND predicted_label IS NOT "
               "NULL AND suggested_label <> predicted_label THEN COALESCE(confidence, 0.0) ELSE -1.0 END")
    op.create_index('ix_samples_status_novelty', 'samples', ['status', 'novelty', 'id'])
    op.create_index('ix_samples_status_uncertainty', 'samples', ['status', 'uncertainty_tier', 'confidence', 'id'])
    op.create_index('ix_samples_status_contradiction', 'samples', ['status', 'contradiction', 'id'])
    op.create_index('ix_samples_status_label_split', 'samples', ['status', 'label', 'split'])


def downgrade() -> None:
    for name in ('label_split', 'contradiction', 'uncertainty', 'novelty'):
        op.drop_index(f'ix_samples_status_{name}', table_name='samples')
    with op.batch_alter_table('samples') as batch:
        for column in ('contradiction', 'uncertainty_tier', 'novelty'):
            batch.drop_column(column)
