"""users.uncounted_jobs: jobs_total from the daily counters

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 19:00:00

``GET /user/me`` used to count every job row of the user; it now sums the
user's daily counters. Jobs the counters missed (stored before they
existed, or whose counting was rolled back with a refused submission of the
old path) are counted once here, so ``jobs_total`` stays what it was.
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('uncounted_jobs', sa.Integer(), server_default='0', nullable=False))
    op.execute("""
        UPDATE users SET uncounted_jobs = (
            SELECT CASE WHEN stored > counted THEN stored - counted ELSE 0 END FROM (
                SELECT (SELECT count(*) FROM jobs WHERE jobs.user_id = users.id) AS stored,
                       (SELECT coalesce(sum(daily_usage.jobs), 0) FROM daily_usage
                         WHERE daily_usage.user_id = users.id) AS counted
            ) AS totals)
    """)


def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('uncounted_jobs')
