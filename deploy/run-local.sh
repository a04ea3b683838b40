#!/usr/bin/env bash
# `make run`: the gateway on 127.0.0.1:8000 under gunicorn plus the poller,
# with the embedded defaults (SQLite and the local executor under ./var).
# Ctrl-C or SIGTERM stops both: waiting /results?wait=true clients get their
# job's current state, and everything is gone within a few seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.venv/bin
# Prometheus values of the gunicorn workers and the poller, merged by GET /metrics;
# emptied here, before either starts (stale files would add old counts).
export PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-$PWD/var/metrics}"
mkdir -p -m 700 "$PROMETHEUS_MULTIPROC_DIR"
rm -f "$PROMETHEUS_MULTIPROC_DIR"/*.db
"$bin/qcos" db upgrade
"$bin/qcos" users ensure-demo
"$bin/qcos" poller &
poller=$!
"$bin/gunicorn" -c deploy/gunicorn.conf.py gateway.wsgi:app &
gunicorn=$!
stopping=""
# Ctrl-C reaches every process of the foreground group itself; a SIGTERM sent
# to this script alone is passed on. Either way, wait for both to finish.
trap 'stopping=1; kill -TERM "$gunicorn" "$poller" 2>/dev/null || true' INT TERM
echo "QCOS gateway on http://${QCOS_BIND:-127.0.0.1:8000} (executor: ${QCOS_EXECUTOR:-local}); Ctrl-C stops it."
code=0
wait "$gunicorn" || code=$?
if [ -n "$stopping" ]; then
    wait "$gunicorn" 2>/dev/null || true  # the first wait ended with the signal, not with gunicorn
    code=130
fi
kill -TERM "$poller" 2>/dev/null || true
wait "$poller" 2>/dev/null || true
exit "$code"
