"""messages: a Message-ID is no longer unique per mailbox

Resends, broken mailers and reused test corpora give distinct messages the same
Message-ID; the unique constraint made the second one vanish on import. Messages stay
unique per provider message id; lookups by Message-ID keep the
``ix_messages_message_id_header`` index (sub-account, Message-ID).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_messages_connection_id_message_id_header'), type_='unique')


def downgrade() -> None:
    # Fails while a mailbox holds two messages with one Message-ID: deciding which one
    # to drop is not a migration's call.
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.create_unique_constraint(batch_op.f('uq_messages_connection_id_message_id_header'),
                                          ['connection_id', 'message_id_header'])
