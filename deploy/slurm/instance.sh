# Sourced by slurm-up.sh and slurm-down.sh: where one cluster instance lives.
#
# QCOS_SLURM_INSTANCE empty (the default): the dev cluster `qcos-dev`, in the
# Debian default places (/etc/slurm, so plain sbatch/squeue need no
# SLURM_CONF), ports 6817-6819, accounting database slurm_acct_db.
#
# QCOS_SLURM_INSTANCE=NAME ([a-z][a-z0-9]*, at most 16): a second, private
# cluster `qcos-NAME` on the same machine and munged, with everything of its
# own: /etc/qcos-slurm-NAME (its SLURM_CONF is /etc/qcos-slurm-NAME/slurm.conf),
# /var/lib, /var/log and /run/qcos-slurm-NAME, database slurm_acct_db_NAME,
# and ports QCOS_SLURM_PORT_BASE (slurmctld), +1 (slurmd), +2 (slurmdbd).
# The fault-injection suite (tests/chaos.py) stops and starts the daemons of
# such a cluster, never those of the dev cluster.
INSTANCE="${QCOS_SLURM_INSTANCE:-}"
if [[ -z $INSTANCE ]]; then
    CONF_DIR=/etc/slurm
    STATE_DIR=/var/lib/qcos-slurm
    LOG_DIR=/var/log/qcos-slurm
    RUN_DIR=/run/qcos-slurm
    CLUSTER=qcos-dev
    PORT_BASE=6817
    DB_NAME=slurm_acct_db
else
    if [[ ! $INSTANCE =~ ^[a-z][a-z0-9]{0,15}$ ]]; then
        echo "QCOS_SLURM_INSTANCE must match [a-z][a-z0-9]{0,15}, not '$INSTANCE'" >&2
        exit 2
    fi
    PORT_BASE="${QCOS_SLURM_PORT_BASE:-}"
    if [[ ! $PORT_BASE =~ ^[0-9]+$ ]] || (( PORT_BASE < 1024 || PORT_BASE > 65533 || PORT_BASE == 6817 )); then
        echo "QCOS_SLURM_INSTANCE=$INSTANCE needs QCOS_SLURM_PORT_BASE: 1024-65533, not the dev cluster's 6817" >&2
        exit 2
    fi
    CONF_DIR=/etc/qcos-slurm-$INSTANCE
    STATE_DIR=/var/lib/qcos-slurm-$INSTANCE
    LOG_DIR=/var/log/qcos-slurm-$INSTANCE
    RUN_DIR=/run/qcos-slurm-$INSTANCE
    CLUSTER=qcos-$INSTANCE
    DB_NAME=slurm_acct_db_$INSTANCE
fi
CTLD_PORT=$PORT_BASE
SLURMD_PORT=$(( PORT_BASE + 1 ))
DBD_PORT=$(( PORT_BASE + 2 ))
# Every Slurm command and daemon these scripts start reads this configuration.
export SLURM_CONF=$CONF_DIR/slurm.conf
