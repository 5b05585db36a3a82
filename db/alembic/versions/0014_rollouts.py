"""rollouts and rollout_observations: a challenger judged on live traffic beside the champion

Revision ID: 0014
Revises: 0013
Create Date: 2027-02-01 09:00:00

``rollouts``: one row per challenger put in front of live traffic (shadow or canary), who started it and how it
ended; at most one open (a unique index on ``open``, NULL once decided). ``rollout_observations``: the images
both models scored, paired later with the reviewer's label through ``sha256``.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0014'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'rollouts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('challenger_version', sa.String(length=32), nullable=False),
        sa.Column('champion_version', sa.String(length=32), nullable=True),
        sa.Column('mode', sa.Enum('shadow', 'canary', name='rollout_mode', native_enum=False, length=16),
                  nullable=False),
        sa.Column('started_by', sa.String(length=64), nullable=False),
        sa.Column('run_id', sa.Integer(), nullable=True),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('open', sa.Boolean(), nullable=True),
        sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('outcome', sa.Enum('promoted', 'aborted', name='rollout_outcome', native_enum=False, length=16),
                  nullable=True),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.Column('decided_by', sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('open'),
    )
    op.create_table(
        'rollout_observations',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('rollout_id', sa.Integer(), nullable=False),
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('answered_by', sa.String(length=16), nullable=False),
        sa.Column('champion_label', sa.String(length=64), nullable=True),
        sa.Column('champion_confidence', sa.Float(), nullable=True),
        sa.Column('champion_latency_ms', sa.Float(), nullable=True),
        sa.Column('challenger_label', sa.String(length=64), nullable=True),
        sa.Column('challenger_confidence', sa.Float(), nullable=True),
        sa.Column('challenger_latency_ms', sa.Float(), nullable=True),
        sa.Column('challenger_error', sa.String(length=200), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['rollout_id'], ['rollouts.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('rollout_observations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rollout_observations_rollout_id'), ['rollout_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_rollout_observations_sha256'), ['sha256'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('rollout_observations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rollout_observations_sha256'))
        batch_op.drop_index(batch_op.f('ix_rollout_observations_rollout_id'))
    op.drop_table('rollout_observations')
    op.drop_table('rollouts')
