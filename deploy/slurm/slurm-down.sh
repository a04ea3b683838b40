#!/usr/bin/env bash
# Stop the QCOS single-node Slurm development cluster started by slurm-up.sh.
#
# Stops slurmd, slurmctld and slurmdbd through their pid files in
# /run/qcos-slurm, and munged only if slurm-up.sh started it. Controller
# state (/var/lib/qcos-slurm), logs (/var/log/qcos-slurm) and the accounting
# database are kept, so job ids keep counting up and sacct history survives.
#
#   slurm-down.sh           stop the daemons
#   slurm-down.sh --purge   also delete state, logs and the slurm_acct_db database
#
# QCOS_SLURM_INSTANCE=NAME (with QCOS_SLURM_PORT_BASE) stops the private
# cluster qcos-NAME that slurm-up.sh started with the same variables instead
# (see instance.sh), and --purge drops its database slurm_acct_db_NAME.
#
# Idempotent: stopping a stopped cluster is a no-op.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=instance.sh
source "$HERE/instance.sh"
DB_HOST="${QCOS_SLURM_DB_HOST:-127.0.0.1}"
DB_PORT="${QCOS_SLURM_DB_PORT:-3306}"
DB_ROOT_PASSWORD="${QCOS_SLURM_DB_ROOT_PASSWORD:-}"

PURGE=0
case "${1:-}" in
    "") ;;
    --purge) PURGE=1 ;;
    *) echo "usage: $0 [--purge]" >&2; exit 2 ;;
esac

log() { printf 'slurm-down: %s\n' "$*"; }

# stop_pidfile NAME PIDFILE: SIGTERM, wait up to 10 s, then SIGKILL.
stop_pidfile() {
    local name=$1 pidfile=$2 pid
    [[ -s $pidfile ]] || return 0
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        log "stopping $name (pid $pid)"
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "$name did not exit after SIGTERM; sending SIGKILL"
            kill -9 "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$pidfile"
}

[[ $(id -u) -eq 0 ]] || { echo "slurm-down: run as root" >&2; exit 1; }

# Reverse start order: the node first, accounting last so the controller can
# flush its pending accounting records on shutdown.
stop_pidfile slurmd "$RUN_DIR/slurmd.pid"
stop_pidfile slurmctld "$RUN_DIR/slurmctld.pid"
stop_pidfile slurmdbd "$RUN_DIR/slurmdbd.pid"
if [[ -f $RUN_DIR/munged.ours ]]; then
    stop_pidfile munged /run/munge/munged.pid
    rm -f "$RUN_DIR/munged.ours"
fi

if (( PURGE )); then
    log "purging $STATE_DIR, $LOG_DIR and database $DB_NAME"
    rm -rf "$STATE_DIR" "$LOG_DIR"
    MYSQL_PWD="$DB_ROOT_PASSWORD" mysql --protocol=TCP -h "$DB_HOST" -P "$DB_PORT" -u root \
        -e "DROP DATABASE IF EXISTS $DB_NAME" || log "could not drop $DB_NAME (MariaDB down?)"
fi
log "stopped"
