"""queue_model.accounting_connected: the poller's last sacct call

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 10:00:00

``GET /`` reports slurmdbd down (``degraded: ["accounting"]``) from what the
poller recorded, never from a sacct call in the request. Null: not known
yet, or an executor without accounting (local).
"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('queue_model', schema=None) as batch_op:
        batch_op.add_column(sa.Column('accounting_connected', sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('queue_model', schema=None) as batch_op:
        batch_op.drop_column('accounting_connected')
