"""conventions: 项目跟踪表 rows and complaint penalties (issue 3)

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('tracking_rows',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('owner', sa.String(length=100), nullable=False),
    sa.Column('project', sa.String(length=200), nullable=False),
    sa.Column('reporter', sa.String(length=100), nullable=False),
    sa.Column('sender', sa.String(length=100), nullable=False),
    sa.Column('comm_date', sa.DateTime(timezone=True), nullable=False),
    sa.Column('contact', sa.Text(), nullable=False),
    sa.Column('method', sa.Text(), nullable=False),
    sa.Column('result', sa.String(length=20), nullable=False),
    sa.Column('issue', sa.Text(), nullable=False),
    sa.Column('remaining', sa.Text(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('message', sa.Integer(), nullable=True),
    sa.Column('source_message_id', sa.String(length=998), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['message'], ['messages.id'], ),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('source_message_id')
    )
    with op.batch_alter_table('tracking_rows', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tracking_rows_owner'), ['owner'], unique=False)
        batch_op.create_index(batch_op.f('ix_tracking_rows_project'), ['project'], unique=False)
        batch_op.create_index(batch_op.f('ix_tracking_rows_ticket_id'), ['ticket_id'], unique=False)

    op.create_table('penalties',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('engineer', sa.String(length=100), nullable=False),
    sa.Column('rule', sa.String(length=50), nullable=False),
    sa.Column('window', sa.String(length=20), nullable=False),
    sa.Column('ordinal', sa.Integer(), nullable=False),
    sa.Column('threshold', sa.Integer(), nullable=False),
    sa.Column('penalty', sa.Text(), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('complaints', sa.JSON(), nullable=False),
    sa.Column('fired_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('message', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['message'], ['messages.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('engineer', 'rule', 'window', 'ordinal', name='uq_penalties_key')
    )
    with op.batch_alter_table('penalties', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_penalties_engineer'), ['engineer'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('penalties', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_penalties_engineer'))

    op.drop_table('penalties')
    with op.batch_alter_table('tracking_rows', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tracking_rows_ticket_id'))
        batch_op.drop_index(batch_op.f('ix_tracking_rows_project'))
        batch_op.drop_index(batch_op.f('ix_tracking_rows_owner'))

    op.drop_table('tracking_rows')
