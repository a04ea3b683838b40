#!/usr/bin/env bash
# Start the QCOS single-node Slurm development cluster (dev machines and CI).
#
# Runs munged, slurmdbd, slurmctld and slurmd directly (no systemd), as root,
# on this machine; the one node is `hostname -s`, in partition `debug`.
#
#   /etc/slurm/slurm.conf, slurmdbd.conf   rendered from deploy/slurm/*.conf.in
#   /var/lib/qcos-slurm/{slurmctld,slurmd}  controller state and slurmd spool
#   /var/log/qcos-slurm/*.log               daemon logs (look here first)
#   /run/qcos-slurm/*.pid                   pid files
#   MariaDB database slurm_acct_db          accounting (user slurm)
#
# Idempotent: daemons already running are left alone, unless the rendered
# configuration changed, in which case the Slurm daemons are restarted.
# Stop with deploy/slurm/slurm-down.sh.
#
# QCOS_SLURM_INSTANCE=NAME with QCOS_SLURM_PORT_BASE=PORT starts a second,
# private cluster qcos-NAME instead, with its own ports, configuration,
# state, logs and accounting database (see instance.sh); its commands need
# SLURM_CONF=/etc/qcos-slurm-NAME/slurm.conf.
#
# Environment overrides: QCOS_SLURM_DB_HOST (127.0.0.1), QCOS_SLURM_DB_PORT
# (3306), QCOS_SLURM_DB_ROOT_PASSWORD (empty), QCOS_SLURM_DB_PASSWORD,
# QCOS_SLURM_TIMEOUT (seconds to wait for each daemon; 30).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=instance.sh
source "$HERE/instance.sh"
ACCOUNT=qcos
DB_HOST="${QCOS_SLURM_DB_HOST:-127.0.0.1}"
DB_PORT="${QCOS_SLURM_DB_PORT:-3306}"
DB_ROOT_PASSWORD="${QCOS_SLURM_DB_ROOT_PASSWORD:-}"
DB_USER=slurm
# A development-only secret for a database that listens on loopback.
DB_PASS="${QCOS_SLURM_DB_PASSWORD:-qcos-dev-slurmdbd}"
TIMEOUT="${QCOS_SLURM_TIMEOUT:-30}"
MUNGE_KEY=/etc/munge/munge.key
MUNGE_RUN=/run/munge
MUNGE_LOG=/var/log/munge/munged.log

START_TS=$(date +%s.%N)
log() { printf 'slurm-up: %s\n' "$*"; }

# die MESSAGE [LOGFILE]: print the message and the tail of the log that explains it.
die() {
    printf 'slurm-up: ERROR: %s\n' "$1" >&2
    if [[ $# -ge 2 && -f "$2" ]]; then
        printf -- '--- last lines of %s ---\n' "$2" >&2
        tail -n 30 "$2" >&2
        printf -- '---\n' >&2
    fi
    exit 1
}

# wait_until DESCRIPTION LOGFILE COMMAND...: poll COMMAND until it succeeds or TIMEOUT passes.
wait_until() {
    local what=$1 logfile=$2
    shift 2
    local deadline=$(( $(date +%s) + TIMEOUT ))
    until "$@" >/dev/null 2>&1; do
        if (( $(date +%s) >= deadline )); then
            die "$what did not happen within ${TIMEOUT}s" "$logfile"
        fi
        sleep 0.2
    done
}

pid_alive() { [[ -s "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

[[ $(id -u) -eq 0 ]] || die "run as root (the daemons need it)"
for bin in munged slurmdbd slurmctld slurmd sacctmgr scontrol sinfo mysql; do
    command -v "$bin" >/dev/null || die "$bin not found; install slurm-wlm slurmdbd munge mariadb-client"
done
id slurm >/dev/null 2>&1 || die "user 'slurm' missing (the Debian slurm packages create it)"

mkdir -p "$STATE_DIR/slurmctld" "$STATE_DIR/slurmd" "$LOG_DIR" "$RUN_DIR" "$CONF_DIR"
# slurmctld and slurmdbd drop to SlurmUser=slurm; slurmd stays root.
chown slurm:slurm "$STATE_DIR/slurmctld" "$LOG_DIR" "$RUN_DIR"
chmod 755 "$RUN_DIR" "$LOG_DIR"

# --- munge -----------------------------------------------------------------
munge_ok() { munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; }
if [[ ! -s $MUNGE_KEY ]]; then
    log "creating munge key $MUNGE_KEY"
    mkdir -p "$(dirname "$MUNGE_KEY")"
    mungekey --create --keyfile="$MUNGE_KEY"
fi
chown munge:munge "$MUNGE_KEY"
chmod 400 "$MUNGE_KEY"
if ! munge_ok; then
    log "starting munged"
    mkdir -p "$MUNGE_RUN" /var/log/munge /var/lib/munge
    chown munge:munge "$MUNGE_RUN" /var/log/munge /var/lib/munge
    chmod 755 "$MUNGE_RUN"
    rm -f "$MUNGE_RUN/munge.socket.2" "$MUNGE_RUN/munge.socket.2.lock"
    runuser -u munge -- munged || die "munged failed to start" "$MUNGE_LOG"
    # slurm-down stops munged only when we were the ones who started it.
    touch "$RUN_DIR/munged.ours"
    wait_until "munged answering" "$MUNGE_LOG" munge_ok
fi

# --- configuration -----------------------------------------------------------
HOST=$(hostname -s)
# `slurmd -C` prints the node exactly as slurmd will register it; a mismatch
# in CPUs/sockets/memory would leave the node drained ("Low RealMemory").
NODE_LINE=$(slurmd -C | head -n 1)
[[ $NODE_LINE == NodeName=* ]] || die "unexpected 'slurmd -C' output: $NODE_LINE"
REAL_MEM=$(sed -n 's/.*RealMemory=\([0-9]\+\).*/\1/p' <<<"$NODE_LINE")
# Keep a margin below the detected memory so a little drift between boots or
# container limits never drains the node.
MARGIN=$(( REAL_MEM / 20 > 256 ? REAL_MEM / 20 : 256 ))
NODE_MEM=$(( REAL_MEM > MARGIN * 2 ? REAL_MEM - MARGIN : REAL_MEM ))
NODE_LINE=$(sed "s/RealMemory=[0-9]\+/RealMemory=$NODE_MEM/" <<<"$NODE_LINE")
# NodeAddr on loopback: the node talks only to itself, whatever the network.
NODE_LINE="$NODE_LINE NodeAddr=127.0.0.1 State=UNKNOWN"

render() {
    sed -e "s|@HOSTNAME@|$HOST|g" -e "s|@STATE_DIR@|$STATE_DIR|g" \
        -e "s|@LOG_DIR@|$LOG_DIR|g" -e "s|@RUN_DIR@|$RUN_DIR|g" \
        -e "s|@NODE_LINE@|$NODE_LINE|g" -e "s|@DB_USER@|$DB_USER|g" \
        -e "s|@DB_HOST@|$DB_HOST|g" -e "s|@DB_PORT@|$DB_PORT|g" \
        -e "s|@DB_PASS@|$DB_PASS|g" -e "s|@CLUSTER@|$CLUSTER|g" \
        -e "s|@CTLD_PORT@|$CTLD_PORT|g" -e "s|@SLURMD_PORT@|$SLURMD_PORT|g" \
        -e "s|@DBD_PORT@|$DBD_PORT|g" -e "s|@DB_NAME@|$DB_NAME|g" "$1"
}

CONFIG_CHANGED=0
# install_conf TEMPLATE TARGET MODE OWNER
install_conf() {
    local tmp
    tmp=$(mktemp)
    render "$1" >"$tmp"
    if [[ ! -f $2 ]] || ! cmp -s "$tmp" "$2"; then
        install -m "$3" -o "$4" -g "$4" "$tmp" "$2"
        CONFIG_CHANGED=1
        log "wrote $2"
    fi
    rm -f "$tmp"
}
install_conf "$HERE/slurm.conf.in" "$CONF_DIR/slurm.conf" 644 root
install_conf "$HERE/slurmdbd.conf.in" "$CONF_DIR/slurmdbd.conf" 600 slurm
# slurmdbd checks ownership every start, even when the file did not change.
chown slurm:slurm "$CONF_DIR/slurmdbd.conf"
chmod 600 "$CONF_DIR/slurmdbd.conf"

stop_daemon() {
    local pidfile=$1 pid
    pid_alive "$pidfile" || return 0
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
}
if (( CONFIG_CHANGED )); then
    for d in slurmd slurmctld slurmdbd; do
        if pid_alive "$RUN_DIR/$d.pid"; then
            log "configuration changed: restarting $d"
            stop_daemon "$RUN_DIR/$d.pid"
        fi
    done
fi

# --- accounting database -------------------------------------------------------
mysql_root() {
    MYSQL_PWD="$DB_ROOT_PASSWORD" mysql --protocol=TCP -h "$DB_HOST" -P "$DB_PORT" -u root "$@"
}
deadline=$(( $(date +%s) + TIMEOUT ))
until mysql_root -e 'SELECT 1' >/dev/null 2>&1; do
    (( $(date +%s) < deadline )) || die "MariaDB at $DB_HOST:$DB_PORT not reachable as root: $(mysql_root -e 'SELECT 1' 2>&1 | tail -n 1)"
    sleep 0.5
done
# Both host forms: MariaDB may see a loopback TCP client as either.
mysql_root <<SQL
CREATE DATABASE IF NOT EXISTS $DB_NAME;
CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
CREATE USER IF NOT EXISTS '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
ALTER USER '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
ALTER USER '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON $DB_NAME.* TO '$DB_USER'@'localhost';
GRANT ALL ON $DB_NAME.* TO '$DB_USER'@'127.0.0.1';
SQL

# --- slurmdbd ------------------------------------------------------------------
if ! pid_alive "$RUN_DIR/slurmdbd.pid"; then
    log "starting slurmdbd"
    slurmdbd || die "slurmdbd failed to start" "$LOG_DIR/slurmdbd.log"
fi
wait_until "slurmdbd answering" "$LOG_DIR/slurmdbd.log" sacctmgr -n -P list cluster format=cluster

has_row() { [[ -n $("$@" 2>/dev/null) ]]; }
if ! has_row sacctmgr -n -P list cluster "$CLUSTER" format=cluster; then
    log "registering cluster $CLUSTER"
    sacctmgr -i add cluster "$CLUSTER" >/dev/null
fi

# --- slurmctld -----------------------------------------------------------------
if ! pid_alive "$RUN_DIR/slurmctld.pid"; then
    log "starting slurmctld"
    slurmctld || die "slurmctld failed to start" "$LOG_DIR/slurmctld.log"
fi
ctld_up() { scontrol ping | grep -q 'is UP'; }
wait_until "slurmctld answering 'scontrol ping'" "$LOG_DIR/slurmctld.log" ctld_up

# --- slurmd --------------------------------------------------------------------
if ! pid_alive "$RUN_DIR/slurmd.pid"; then
    log "starting slurmd"
    slurmd || die "slurmd failed to start" "$LOG_DIR/slurmd.log"
fi
# A trailing '*' means "not responding"; drain/down would never run jobs.
node_ready() {
    local state
    state=$(sinfo --noheader --nodes="$HOST" --format=%T 2>/dev/null | head -n 1)
    [[ $state =~ ^(idle|mixed|allocated|completing)$ ]]
}
node_state() { sinfo --noheader --nodes="$HOST" --format='%T %E' 2>/dev/null | head -n 1; }
case "$(node_state)" in
    drain* | down* | fail*)
        # Left over from an earlier crash; this script owns the node, so resume it.
        scontrol update NodeName="$HOST" State=RESUME >/dev/null 2>&1 || true ;;
esac
deadline=$(( $(date +%s) + TIMEOUT ))
until node_ready; do
    if (( $(date +%s) >= deadline )); then
        die "node $HOST not idle within ${TIMEOUT}s (sinfo: $(node_state))" "$LOG_DIR/slurmd.log"
    fi
    sleep 0.2
done

# --- associations ----------------------------------------------------------------
if ! has_row sacctmgr -n -P list account "$ACCOUNT" format=account; then
    log "adding account $ACCOUNT"
    sacctmgr -i add account "$ACCOUNT" Cluster="$CLUSTER" \
        Description="QCOS gateway jobs" Organization=qcos >/dev/null
fi
if ! has_row sacctmgr -n -P list association cluster="$CLUSTER" account="$ACCOUNT" user=root format=user; then
    log "adding user root to account $ACCOUNT"
    sacctmgr -i add user root Account="$ACCOUNT" Cluster="$CLUSTER" >/dev/null
fi

ELAPSED=$(awk -v s="$START_TS" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
log "cluster $CLUSTER up in ${ELAPSED}s: node $HOST $(sinfo --noheader --nodes="$HOST" --format=%T | head -n 1), partition debug; logs in $LOG_DIR"
