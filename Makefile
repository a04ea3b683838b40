# QCOS gateway. `make run` starts it with embedded defaults; `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test sdk-test lint slurm-up slurm-down bench chaos clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,postgres]'
	touch $(STAMP)

run: install
	deploy/run-local.sh

# Brings the local Slurm cluster up first when this machine can run it (root,
# Debian's slurm packages installed); without it the Slurm tests skip, except
# under CI=true, where they fail. Ends with the SDKs' tests (sdk-test).
test: install
	@if [ "$$(id -u)" = 0 ] && command -v slurmctld >/dev/null; then deploy/slurm/slurm-up.sh; \
	else echo "make test: no local Slurm cluster (needs root and slurm-wlm); Slurm tests will skip"; fi
	$(BIN)/pytest -ra $(PYTEST_ARGS)
	$(BIN)/python -m tests.sdk_suites

# Every SDK's own tests (sdk/js, sdk/go, sdk/rust, sdk/python) against a
# gateway started for them; SDKS="go rust" runs only those.
sdk-test: install
	$(BIN)/python -m tests.sdk_suites $(SDKS)

lint: install
	$(BIN)/ruff check gateway hpc_jobs tests deploy

slurm-up:
	deploy/slurm/slurm-up.sh

slurm-down:
	deploy/slurm/slurm-down.sh

bench: install
	$(BIN)/python -m tests.bench $(BENCH_ARGS)
	$(BIN)/python -m tests.bench_http --submit $(BENCH_HTTP_ARGS)

# Fault injection (tests/chaos.py), as root, on a private Slurm cluster
# (qcos-chaos), PostgreSQL, Redis and sshd that it starts and breaks itself;
# the shared ones are never touched. About 15 minutes; make test runs
# --short. CHAOS_ARGS="--short", "--only slurmctld kill-poller --kills 10".
chaos: install
	$(BIN)/python -m tests.chaos $(CHAOS_ARGS)

clean:
	rm -rf var .pytest_cache
