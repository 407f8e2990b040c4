"""oauth flow confirmation: the provider's answer is parked until the CRM session confirms

A sign-in no longer connects the mailbox at the provider's callback: the callback parks
the answer (encrypted) and hands the browser a one-time flow token, kept here as its
SHA-256; ``completeEmailConnection`` from the session that started it finishes it.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('oauth_flows', schema=None) as batch_op:
        batch_op.add_column(sa.Column('flow_token_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('answer_ciphertext', sa.Text(), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_oauth_flows_flow_token_hash'), ['flow_token_hash'])


def downgrade() -> None:
    with op.batch_alter_table('oauth_flows', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_oauth_flows_flow_token_hash'), type_='unique')
        batch_op.drop_column('answer_ciphertext')
        batch_op.drop_column('flow_token_hash')
