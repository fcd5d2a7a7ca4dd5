"""tickets: an index on (kind, project, state), for a project's newest open records

Revision ID: 0009_ticket_place
Revises: 0008_counters
"""
from alembic import op


revision = '0009_ticket_place'
down_revision = '0008_counters'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A report lists its project's newest open follow-ups: with this index the
    # lookup reads those, not every record of the project.
    op.create_index('ix_tickets_place', 'tickets', ['kind', 'project', 'state'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_tickets_place', table_name='tickets')
