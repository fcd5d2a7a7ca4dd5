"""messages: the outcome as data (a code and its parameters)

Revision ID: 0007_outcomes
Revises: 0006_outbox_recipients
"""
from alembic import op
import sqlalchemy as sa


revision = '0007_outcomes'
down_revision = '0006_outbox_recipients'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('outcome_code', sa.String(length=60), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('outcome_params', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_column('outcome_params')
        batch_op.drop_column('outcome_code')
