"""daily usage counters and execution time

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 18:47:16.199029
"""
import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('daily_usage',
    sa.Column('user_id', sa.String(length=40), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('jobs', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'day')
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('execution_time_seconds', sa.Float(), nullable=True))
        batch_op.create_index('ix_jobs_user_completed', ['user_id', 'completed_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_jobs_user_completed')
        batch_op.drop_column('execution_time_seconds')

    op.drop_table('daily_usage')
