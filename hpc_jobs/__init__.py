"""The cluster side of QCOS: everything that talks to, or runs on, a Slurm cluster.

Nothing in this package imports Flask, SQLAlchemy or :mod:`gateway`; the
runner (:mod:`hpc_jobs.runner`) runs inside the batch job on a compute node.
"""
