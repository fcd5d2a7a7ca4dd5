"""outbox: a queued mail's bytes or draft in a table of its own

Revision ID: 0012_outbox_content
Revises: 0011_outbox_drafts
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy import text


revision = '0012_outbox_content'
down_revision = '0011_outbox_drafts'
branch_labels = None
depends_on = None

# A row's status changes (claimed, sent) no longer rewrite the mail it
# carries (models.OutboxContent).


def _lz4(table: str) -> None:
    """PostgreSQL: the table's mail columns compressed with lz4 where the
    server has it, not pglz."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    methods = bind.execute(text("SELECT enumvals FROM pg_settings WHERE name = 'default_toast_compression'")).scalar()
    if methods and "lz4" in methods:
        for column in ("raw", "draft"):
            op.execute(f'ALTER TABLE {table} ALTER COLUMN "{column}" SET COMPRESSION lz4')


def upgrade() -> None:
    op.create_table(
        'outbox_content',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column('raw', sa.LargeBinary(), nullable=True),
        sa.Column('draft', sa.JSON(), nullable=True),
    )
    _lz4("outbox_content")  # as the columns they come from (0010, 0011); before the copy, which it applies to
    op.execute("INSERT INTO outbox_content (id, raw, draft) SELECT id, raw, draft FROM outbox")
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('raw')
        batch_op.drop_column('draft')


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('raw', sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column('draft', sa.JSON(), nullable=True))
    _lz4("outbox")
    op.execute("UPDATE outbox SET raw = (SELECT c.raw FROM outbox_content c WHERE c.id = outbox.id), "
               "draft = (SELECT c.draft FROM outbox_content c WHERE c.id = outbox.id)")
    op.drop_table('outbox_content')
