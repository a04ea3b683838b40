#!/usr/bin/env bash
# `make run`: the gateway on 127.0.0.1:8000 under gunicorn plus the poller,
# with the embedded defaults (SQLite and the local executor under ./var).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.venv/bin
# Prometheus values of the gunicorn workers and the poller, merged by GET /metrics;
# emptied here, before either starts (stale files would add old counts).
export PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-$PWD/var/metrics}"
mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
rm -f "$PROMETHEUS_MULTIPROC_DIR"/*.db
"$bin/qcos" db upgrade
"$bin/qcos" users ensure-demo
"$bin/qcos" poller &
poller=$!
trap 'kill "$poller" 2>/dev/null || true; wait "$poller" 2>/dev/null || true' EXIT
trap 'exit 130' INT TERM
echo "QCOS gateway on http://${QCOS_BIND:-127.0.0.1:8000} (executor: ${QCOS_EXECUTOR:-local}); Ctrl-C stops it."
"$bin/gunicorn" -c deploy/gunicorn.conf.py gateway.wsgi:app
