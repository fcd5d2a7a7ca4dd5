"""counters: counts over history kept as rows (complaints per engineer per window)

Revision ID: 0008_counters
Revises: 0007_outcomes
"""
from alembic import op
import sqlalchemy as sa


revision = '0008_counters'
down_revision = '0007_outcomes'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Rows are built on first use from the records already stored
    # (processor/records.py), so an upgraded store needs no backfill here.
    op.create_table(
        'counters',
        sa.Column('name', sa.String(length=50), nullable=False),
        sa.Column('subject', sa.String(length=200), nullable=False),
        sa.Column('window', sa.String(length=20), nullable=False),
        sa.Column('count', sa.Integer(), nullable=False),
        sa.Column('items', sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint('name', 'subject', 'window'),
    )


def downgrade() -> None:
    op.drop_table('counters')
