"""sender side: sub-account SMTP relay, bulk sends, idempotency keys, send routes

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import db.base


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('idempotency_keys',
    sa.Column('sub_account_id', sa.Uuid(), nullable=False),
    sa.Column('caller', sa.String(length=80), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('operation', sa.String(length=40), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('result_id', sa.Uuid(), nullable=False),
    sa.Column('expires_at', db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', db.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['sub_account_id'], ['sub_accounts.id'], name=op.f('fk_idempotency_keys_sub_account_id_sub_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_idempotency_keys')),
    sa.UniqueConstraint('sub_account_id', 'caller', 'key', name=op.f('uq_idempotency_keys_sub_account_id_caller_key'))
    )
    with op.batch_alter_table('idempotency_keys', schema=None) as batch_op:
        batch_op.create_index('ix_idempotency_keys_expires_at', ['expires_at'], unique=False)

    op.create_table('sub_account_email_providers',
    sa.Column('sub_account_id', sa.Uuid(), nullable=False),
    sa.Column('host', sa.String(length=253), nullable=False),
    sa.Column('port', sa.Integer(), nullable=False),
    sa.Column('tls_mode', sa.String(length=10), nullable=False),
    sa.Column('username', sa.String(length=320), nullable=True),
    sa.Column('password_ciphertext', sa.Text(), nullable=True),
    sa.Column('from_email', sa.String(length=320), nullable=False),
    sa.Column('from_name', sa.String(length=200), nullable=True),
    sa.Column('max_per_minute', sa.Integer(), nullable=False),
    sa.Column('verified_at', db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('updated_at', db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', db.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['sub_account_id'], ['sub_accounts.id'], name=op.f('fk_sub_account_email_providers_sub_account_id_sub_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sub_account_email_providers')),
    sa.UniqueConstraint('sub_account_id', name=op.f('uq_sub_account_email_providers_sub_account_id'))
    )
    op.create_table('bulk_sends',
    sa.Column('sub_account_id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=True),
    sa.Column('route', sa.String(length=12), nullable=False),
    sa.Column('route_reason', sa.String(length=40), nullable=False),
    sa.Column('from_email', sa.String(length=320), nullable=False),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.Column('sent_count', sa.Integer(), nullable=False),
    sa.Column('failed_count', sa.Integer(), nullable=False),
    sa.Column('completed_at', db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('drain_lease_until', db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', db.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['sub_account_id'], ['sub_accounts.id'], name=op.f('fk_bulk_sends_sub_account_id_sub_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_bulk_sends_user_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bulk_sends'))
    )
    with op.batch_alter_table('bulk_sends', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_bulk_sends_sub_account_id'), ['sub_account_id'], unique=False)

    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('route', sa.String(length=12), nullable=True))
        batch_op.add_column(sa.Column('route_reason', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('kind', sa.String(length=12), nullable=True))
        batch_op.add_column(sa.Column('bulk_send_id', sa.Uuid(), nullable=True))
        batch_op.create_index(batch_op.f('ix_messages_bulk_send_id'), ['bulk_send_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_messages_bulk_send_id_bulk_sends'), 'bulk_sends', ['bulk_send_id'], ['id'], ondelete='SET NULL')

    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('route', sa.String(length=12), server_default='mailbox', nullable=False))
        batch_op.add_column(sa.Column('bulk_send_id', sa.Uuid(), nullable=True))
        batch_op.create_index(batch_op.f('ix_outbox_bulk_send_id'), ['bulk_send_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_outbox_bulk_send_id_bulk_sends'), 'bulk_sends', ['bulk_send_id'], ['id'], ondelete='CASCADE')



def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_outbox_bulk_send_id_bulk_sends'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_outbox_bulk_send_id'))
        batch_op.drop_column('bulk_send_id')
        batch_op.drop_column('route')

    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_messages_bulk_send_id_bulk_sends'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_messages_bulk_send_id'))
        batch_op.drop_column('bulk_send_id')
        batch_op.drop_column('kind')
        batch_op.drop_column('route_reason')
        batch_op.drop_column('route')

    with op.batch_alter_table('bulk_sends', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_bulk_sends_sub_account_id'))

    op.drop_table('bulk_sends')
    op.drop_table('sub_account_email_providers')
    with op.batch_alter_table('idempotency_keys', schema=None) as batch_op:
        batch_op.drop_index('ix_idempotency_keys_expires_at')

    op.drop_table('idempotency_keys')
