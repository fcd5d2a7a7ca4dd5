"""mail bounds: in-flight markers, quarantine reasons as data

Revision ID: 0005_mail_bounds
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa


revision = '0005_mail_bounds'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('in_flight',
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('solo', sa.Boolean(), nullable=False),
    sa.Column('deaths', sa.Integer(), nullable=False),
    sa.Column('owner', sa.String(length=200), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('sha256')
    )
    with op.batch_alter_table('quarantine', schema=None) as batch_op:
        batch_op.add_column(sa.Column('code', sa.String(length=50), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('params', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('quarantine', schema=None) as batch_op:
        batch_op.drop_column('params')
        batch_op.drop_column('code')
    op.drop_table('in_flight')
