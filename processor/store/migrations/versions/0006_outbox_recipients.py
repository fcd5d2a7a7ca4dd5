"""outbox: delivery per recipient, claims with a lease

Revision ID: 0006_outbox_recipients
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa


revision = '0006_outbox_recipients'
down_revision = '0005_mail_bounds'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('rcpt_state', sa.JSON(), nullable=False, server_default=sa.text("'{}'")))
        batch_op.add_column(sa.Column('claimed_by', sa.String(length=200), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('lease_until')
        batch_op.drop_column('claimed_by')
        batch_op.drop_column('rcpt_state')
