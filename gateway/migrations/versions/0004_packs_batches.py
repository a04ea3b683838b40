"""packs, batches and the dispatcher's queue model

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 14:31:56.377738
"""
import secrets

import sqlalchemy as sa
from alembic import op

import gateway.models


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('packs',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('executor', sa.String(length=16), nullable=False),
    sa.Column('cluster_profile', sa.String(length=64), nullable=False),
    sa.Column('dispatch_class', sa.String(length=200), nullable=False),
    sa.Column('job_name', sa.String(length=128), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('work_dir', sa.Text(), nullable=False),
    sa.Column('job_count', sa.Integer(), nullable=False),
    sa.Column('resources', sa.JSON(), nullable=False),
    sa.Column('scheduler_job_id', sa.String(length=80), nullable=True),
    sa.Column('slurm_state', sa.String(length=64), nullable=True),
    sa.Column('progress_offset', sa.Integer(), nullable=False),
    sa.Column('runner_finished', sa.Boolean(), nullable=False),
    sa.Column('submit_attempts', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', gateway.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('not_before', gateway.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('submit_started_at', gateway.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('submitted_at', gateway.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('started_at', gateway.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('ended_at', gateway.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('missing_since', gateway.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('unknown_state_since', gateway.models.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('job_name')
    )
    with op.batch_alter_table('packs', schema=None) as batch_op:
        batch_op.create_index('ix_packs_executor_state', ['executor', 'state'], unique=False)
        batch_op.create_index(batch_op.f('ix_packs_scheduler_job_id'), ['scheduler_job_id'], unique=False)

    op.create_table('queue_model',
    sa.Column('executor', sa.String(length=16), nullable=False),
    sa.Column('waiting', sa.JSON(), nullable=False),
    sa.Column('live_packs', sa.Integer(), nullable=False),
    sa.Column('max_live_packs', sa.Integer(), nullable=False),
    sa.Column('pending_start_seconds', sa.Integer(), nullable=False),
    sa.Column('scheduler_connected', sa.Boolean(), nullable=False),
    sa.Column('checked_at', gateway.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('updated_at', gateway.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('executor')
    )
    op.create_table('batches',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('user_id', sa.String(length=40), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('created_at', gateway.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('batches', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_batches_user_id'), ['user_id'], unique=False)

    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('seed', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('dispatch_class', sa.String(length=200), server_default='', nullable=False))
        batch_op.add_column(sa.Column('resources', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('runtime_seconds', sa.Integer(), server_default='1', nullable=False))
        batch_op.add_column(sa.Column('batch_id', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('pack_id', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('dispatch_count', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('cancel_pending', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.alter_column('scheduler_job_id',
               existing_type=sa.VARCHAR(length=64),
               type_=sa.String(length=80),
               existing_nullable=True)
        batch_op.create_index('ix_jobs_batch', ['batch_id'], unique=False)
        batch_op.create_index('ix_jobs_dispatch', ['executor', 'status', 'pack_id', 'created_at'], unique=False)
        batch_op.create_index('ix_jobs_pack', ['pack_id'], unique=False)
        batch_op.create_foreign_key('fk_jobs_pack_id', 'packs', ['pack_id'], ['id'], ondelete='SET NULL')
        batch_op.create_foreign_key('fk_jobs_batch_id', 'batches', ['batch_id'], ['id'], ondelete='SET NULL')
        batch_op.drop_column('last_seen_at')
        batch_op.drop_column('slurm_state')
    _adopt_live_jobs()


def _adopt_live_jobs() -> None:
    """Jobs submitted one batch job each before packs existed become packs of one,
    so the poller follows them; one never submitted is failed with the reason."""
    jobs = sa.table("jobs", sa.column("id"), sa.column("status"), sa.column("executor"),
                    sa.column("cluster_profile"), sa.column("work_dir"), sa.column("scheduler_job_id"),
                    sa.column("pack_id"), sa.column("dispatch_count"), sa.column("error"), sa.column("created_at"),
                    sa.column("completed_at"))
    packs = sa.table("packs", *(sa.column(name) for name in (
        "id", "executor", "cluster_profile", "dispatch_class", "job_name", "state", "work_dir", "job_count",
        "resources", "scheduler_job_id", "progress_offset", "runner_finished", "submit_attempts", "created_at",
        "submitted_at")))
    connection = op.get_bind()
    live = connection.execute(sa.select(jobs).where(jobs.c.status.in_(["queued", "processing"]))).all()
    for job in live:
        if job.scheduler_job_id is None:
            connection.execute(sa.update(jobs).where(jobs.c.id == job.id).values(
                status="failed", completed_at=job.created_at,
                error="the job never reached the scheduler (the gateway was upgraded during its submission)"))
            continue
        pack_id = "p" + secrets.token_hex(8)
        connection.execute(sa.insert(packs).values(
            id=pack_id, executor=job.executor, cluster_profile=job.cluster_profile, dispatch_class="legacy",
            job_name="qcos-" + job.id, state="running" if job.status == "processing" else "submitted",
            work_dir=job.work_dir, job_count=1, resources={}, scheduler_job_id=job.scheduler_job_id,
            progress_offset=0, runner_finished=False, submit_attempts=1, created_at=job.created_at, submitted_at=job.created_at))
        connection.execute(sa.update(jobs).where(jobs.c.id == job.id).values(pack_id=pack_id, dispatch_count=1))


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_seen_at', gateway.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('slurm_state', sa.String(length=64), nullable=True))
        batch_op.drop_constraint('fk_jobs_batch_id', type_='foreignkey')
        batch_op.drop_constraint('fk_jobs_pack_id', type_='foreignkey')
        batch_op.drop_index('ix_jobs_pack')
        batch_op.drop_index('ix_jobs_dispatch')
        batch_op.drop_index('ix_jobs_batch')
        batch_op.alter_column('scheduler_job_id',
               existing_type=sa.String(length=80),
               type_=sa.VARCHAR(length=64),
               existing_nullable=True)
        batch_op.drop_column('cancel_pending')
        batch_op.drop_column('dispatch_count')
        batch_op.drop_column('pack_id')
        batch_op.drop_column('batch_id')
        batch_op.drop_column('runtime_seconds')
        batch_op.drop_column('resources')
        batch_op.drop_column('dispatch_class')
        batch_op.drop_column('seed')

    with op.batch_alter_table('batches', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_batches_user_id'))

    op.drop_table('batches')
    op.drop_table('queue_model')
    with op.batch_alter_table('packs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_packs_scheduler_job_id'))
        batch_op.drop_index('ix_packs_executor_state')

    op.drop_table('packs')

