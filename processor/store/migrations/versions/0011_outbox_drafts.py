"""outbox: a mail without files is kept as its draft, built by the sender

Revision ID: 0011_outbox_drafts
Revises: 0010_lz4
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy import text


revision = '0011_outbox_drafts'
down_revision = '0010_lz4'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('draft', sa.JSON(), nullable=True))
        batch_op.alter_column('raw', existing_type=sa.LargeBinary(), nullable=True)
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        # As outbox.raw (0010): lz4 where the server has it, not pglz.
        methods = bind.execute(text("SELECT enumvals FROM pg_settings WHERE name = 'default_toast_compression'")).scalar()
        if methods and "lz4" in methods:
            op.execute('ALTER TABLE outbox ALTER COLUMN "draft" SET COMPRESSION lz4')


def downgrade() -> None:
    # A row still pending as a draft has no bytes to keep: deliver the queue first.
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.alter_column('raw', existing_type=sa.LargeBinary(), nullable=False)
        batch_op.drop_column('draft')
