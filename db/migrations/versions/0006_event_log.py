"""event log: every domain event, numbered per sub-account, written with its change

``events`` holds the events (ids only) and ``event_counters`` the per-sub-account
sequence whose row lock orders their commits; subscribers replay from a cursor.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import db.base

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'event_counters',
        sa.Column('sub_account_id', sa.Uuid(), nullable=False),
        sa.Column('last_seq', sa.BigInteger(), nullable=False),
        sa.Column('purged_through', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['sub_account_id'], ['sub_accounts.id'],
                                name=op.f('fk_event_counters_sub_account_id_sub_accounts'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('sub_account_id', name=op.f('pk_event_counters')),
    )
    op.create_table(
        'events',
        sa.Column('sub_account_id', sa.Uuid(), nullable=False),
        sa.Column('seq', sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column('type', sa.String(length=32), nullable=False),
        sa.Column('thread_id', sa.Uuid(), nullable=True),
        sa.Column('message_id', sa.Uuid(), nullable=True),
        sa.Column('connection_id', sa.Uuid(), nullable=True),
        sa.Column('user_id', sa.Uuid(), nullable=True),
        sa.Column('status', sa.String(length=32), nullable=True),
        sa.Column('occurred_at', db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['sub_account_id'], ['sub_accounts.id'],
                                name=op.f('fk_events_sub_account_id_sub_accounts'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('sub_account_id', 'seq', name=op.f('pk_events')),
    )
    op.create_index('ix_events_occurred_at', 'events', ['occurred_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_events_occurred_at', table_name='events')
    op.drop_table('events')
    op.drop_table('event_counters')
