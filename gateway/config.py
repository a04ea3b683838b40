"""Gateway configuration: one object, read from the environment once.

Every variable is optional; the defaults are the embedded setup of
``make run`` (SQLite file and the local executor under ``./var``).

=============================== ============================================
``QCOS_STATE_DIR``              folder for the SQLite file, work dirs and the
                                local executor (default: ``var/`` in the
                                checkout); made mode 0700 at start
``QCOS_DATABASE_URL``           SQLAlchemy URL; ``postgresql://…`` uses
                                psycopg 3 (default: SQLite in the state dir)
``QCOS_EXECUTOR``               ``local`` (default) or ``slurm``
``QCOS_CLUSTER_PROFILE``        profile name in ``deploy/profiles`` or a
                                path to a TOML file (default ``dev``)
``QCOS_WORK_ROOT``              where job work dirs go; must be visible to the
                                compute nodes for ``slurm`` (default
                                ``$QCOS_STATE_DIR/jobs``)
``QCOS_POLL_INTERVAL``          seconds between scheduler observations (default 5)
``QCOS_MISSING_GRACE``          seconds a job may be absent from squeue and
                                sacct before it fails (default 300)
``QCOS_RESULTS_MAX_WAIT``       upper bound of ``/results?timeout=`` (300)
``QCOS_MAX_WAITING_REQUESTS``   requests per process that may block in
                                ``/results?wait=true`` at once (16); more are
                                answered without waiting
``QCOS_MAX_BODY_BYTES``         largest request body accepted (2 MiB)
``QCOS_SLURM_ACCOUNT``          ``--account`` for every job, overriding the
                                profile's (LUMI: ``project_<id>``)
``QCOS_SSH_HOST``               run Slurm commands on this login node over
                                SSH (with ``QCOS_EXECUTOR=slurm``); work dirs
                                go to ``QCOS_WORK_ROOT`` on the cluster by SFTP
``QCOS_SSH_PORT``, ``QCOS_SSH_USER``, ``QCOS_SSH_KEY``, ``QCOS_SSH_KNOWN_HOSTS``
                                port (22), user, private key file and the
                                known_hosts file the host key must be in
``QCOS_PACK_MAX_JOBS``         jobs per pack (250); ``QCOS_PACK_MAX_SECONDS``
                                estimated seconds of work per pack (900)
``QCOS_PACK_MAX_STATE_BYTES``   largest state of a job that may share a pack
                                (1 GiB); ``QCOS_PACK_MAX_JOB_SECONDS`` its
                                largest runtime estimate (120)
``QCOS_PACK_LINGER``            seconds without a new job from its users
                                before a pack that is not full is
                                submitted (0.5);
                                ``QCOS_PACK_MAX_LINGER`` the most a job waits
                                for its pack to fill (10)
``QCOS_MAX_LIVE_SLURM_JOBS``    Slurm jobs the service account holds at once (8)
``QCOS_DISPATCH_INTERVAL``      seconds between dispatcher cycles (0.25)
``QCOS_SUBMIT_RECOVERY``        seconds before a pack whose sbatch answer was
                                lost is looked up by name (15)
``QCOS_SLURM_COMMAND_TIMEOUT``  seconds one Slurm command (sbatch, squeue,
                                sacct, scancel) may take before it is given
                                up, and over SSH ended on the login node (30)
``QCOS_UNKNOWN_STATE_GRACE``    seconds a pack may stay in a Slurm state the
                                lifecycle table does not know (600)
``QCOS_BATCH_MAX_CIRCUITS``     circuits per ``POST /batches`` (1000);
                                ``QCOS_MAX_BATCH_BODY_BYTES`` its body (32 MiB);
                                ``QCOS_BATCH_VALIDATION_UNITS`` the validation
                                cost its circuits may use together (1,500,000:
                                ten times one circuit's bound)
``QCOS_LOG_LEVEL``              ``INFO`` by default
``QCOS_TIERS_FILE``             tiers, quotas and rate limits (default
                                ``deploy/tiers.toml``)
``QCOS_RATELIMIT_ENABLED``      ``true`` (default) or ``false``: per-key and
                                per-address request rate limits
``QCOS_RATELIMIT_STORAGE_URI``  where request counters live, a ``limits``
                                storage URI: ``memory://`` (default; one
                                process only, so gunicorn then runs one
                                worker) or ``redis://host:6379/0`` (shared by
                                all workers and hosts)
``QCOS_RATELIMIT_KEY_PREFIX``   prefix of every counter's storage key, so
                                several gateways can share one Redis (default
                                ``qcos``)
``QCOS_ANON_RATE_LIMIT``        limit per client address for requests without
                                a valid API key, in ``limits`` notation, e.g.
                                ``60/minute`` (default) or ``5/second;100/hour``
``QCOS_TRUSTED_PROXIES``        number of reverse proxies in front of the
                                gateway whose ``X-Forwarded-For`` is trusted
                                for the client address (default 0: use the
                                TCP peer address, ignore the header)
``QCOS_CORS_ORIGINS``           origins (``https://app.example.org``,
                                comma- or space-separated, or ``*``) whose
                                browser pages may call the API; default none:
                                no CORS headers, ``OPTIONS`` answers 204 with
                                ``Allow`` only
``QCOS_PUBLIC_URL``             the gateway's address as clients reach it,
                                ``http(s)://host[:port][/path]``, e.g.
                                ``https://qcos.example.org``: the ``servers``
                                entry of ``/openapi.json`` (default: none, so
                                clients use the address they fetched the
                                document from)
``QCOS_LOG_FORMAT``             ``text`` (default) or ``json``: one JSON
                                object per log line (:mod:`gateway.logs`)
``QCOS_METRICS_TOKEN``          when set, ``GET /metrics`` needs
                                ``Authorization: Bearer <token>``
``QCOS_METRICS_ALLOWED_NETWORKS`` comma-separated addresses or networks
                                (``10.0.0.0/8,127.0.0.1``) that may read
                                ``/metrics``; empty: any
``QCOS_SECRET_KEY``             signs the admin page's session cookie; the
                                same on every gateway host (default: a
                                random key kept in ``$QCOS_STATE_DIR/secret_key``)
``QCOS_ADMIN_COOKIE_SECURE``    ``true`` (default): the admin session cookie
                                is sent over HTTPS only (and to localhost)
=============================== ============================================
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

#: The checkout: the default state dir is its ``var/``, wherever ``qcos`` runs from.
REPO_ROOT = Path(__file__).resolve().parents[1]


class ConfigError(ValueError):
    """An environment variable holds a value the gateway cannot use."""


def _number(env: Mapping[str, str], name: str, default: float, *, minimum: float = 0) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum:g}")
    return value


def _whole_number(env: Mapping[str, str], name: str, default: int) -> int:
    value = _number(env, name, default)
    if value != int(value):
        raise ConfigError(f"{name} must be a whole number, not {env.get(name)!r}")
    return int(value)


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, not {raw!r}")


def _rate_limit(env: Mapping[str, str], name: str, default: str) -> str:
    from limits import parse_many

    raw = (env.get(name) or "").strip() or default
    try:
        parse_many(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a rate limit such as '60/minute' or '5/second;100/hour', "
                          f"not {raw!r}") from None
    return raw


_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?")


def _origins(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    origins = tuple((env.get(name) or "").replace(",", " ").split())
    for origin in origins:
        # Exact origins only: Flask-CORS would read "(", "*", "$"... as a regular expression.
        if origin != "*" and not _ORIGIN.fullmatch(origin):
            raise ConfigError(f"{name} must list origins such as https://app.example.org:8443 (scheme, host, "
                              f"optional port; no path) or '*', not {origin!r}")
    if "*" in origins and len(origins) > 1:
        raise ConfigError(f"{name}: '*' allows every origin; list no others with it")
    return origins


def make_private_dir(path: Path) -> Path:
    """Create ``path`` (with missing parents) and make it mode 0700: readable
    by the service user only, whatever the umask. Returns ``path``.
    Raises ``OSError``."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)
    return path
def _public_url(env: Mapping[str, str], name: str) -> str:
    from urllib.parse import urlsplit

    raw = (env.get(name) or "").strip()
    if not raw:
        return ""
    parts = urlsplit(raw)
    if (parts.scheme not in ("http", "https") or not parts.hostname or parts.username is not None
            or parts.query or parts.fragment or not raw.isascii() or any(c.isspace() for c in raw)):
        raise ConfigError(f"{name} must be an http(s) URL such as https://qcos.example.org, "
                          f"without user, query or fragment, not {raw!r}")
    try:
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        raise ConfigError(f"{name} has an invalid port: {raw!r}") from None
    return raw.rstrip("/")


def _networks(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    import ipaddress

    networks = []
    for item in (env.get(name) or "").split(","):
        if item.strip():
            try:
                networks.append(str(ipaddress.ip_network(item.strip(), strict=False)))
            except ValueError:
                raise ConfigError(f"{name}: {item.strip()!r} is not an IP address or network") from None
    return tuple(networks)


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    raw = (env.get(name) or "").strip().lower() or choices[0]
    if raw not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, not {raw!r}")
    return raw


def normalize_database_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL URLs that name no driver (``postgresql://``)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


@dataclass(frozen=True)
class Settings:
    """The gateway's configuration; see the module docstring for the variables."""

    state_dir: Path
    database_url: str
    executor: str
    cluster_profile: str
    work_root: Path
    poll_interval_seconds: float = 5.0
    missing_grace_seconds: float = 300.0
    results_max_wait_seconds: float = 300.0
    max_body_bytes: int = 2 * 1024 * 1024
    log_level: str = "INFO"
    tiers_file: Path = Path(__file__).resolve().parents[1] / "deploy" / "tiers.toml"
    ssh_host: str = ""
    ssh_port: int = 22
    ssh_user: str = ""
    ssh_key: Path | None = None
    ssh_known_hosts: Path | None = None
    slurm_account: str = ""
    max_waiting_requests: int = 16
    ratelimit_enabled: bool = True
    ratelimit_storage_uri: str = "memory://"
    ratelimit_key_prefix: str = "qcos"
    anon_rate_limit: str = "60/minute"
    trusted_proxies: int = 0
    cors_origins: tuple[str, ...] = ()
    # The dispatcher and packs (gateway/dispatcher.py, hpc_jobs/packing.py).
    pack_max_jobs: int = 250
    pack_max_seconds: int = 900
    pack_max_state_bytes: int = 1 << 30
    pack_max_job_seconds: int = 120
    pack_linger_seconds: float = 0.5
    pack_max_linger_seconds: float = 10.0
    max_live_slurm_jobs: int = 8
    dispatch_interval_seconds: float = 0.25
    submit_recovery_seconds: float = 15.0
    slurm_command_timeout_seconds: float = 30.0
    unknown_state_grace_seconds: float = 600.0
    batch_max_circuits: int = 1000
    max_batch_body_bytes: int = 32 * 1024 * 1024
    batch_validation_units: int = 1_500_000

    @property
    def pack_limits(self):
        """The :class:`hpc_jobs.packing.PackLimits` these settings give."""
        from hpc_jobs.packing import PackLimits

        return PackLimits(max_jobs=self.pack_max_jobs, max_seconds=self.pack_max_seconds,
                          max_state_bytes=self.pack_max_state_bytes, max_job_seconds=self.pack_max_job_seconds,
                          linger_seconds=self.pack_linger_seconds, max_linger_seconds=self.pack_max_linger_seconds)
    public_url: str = ""

    def prepare_dirs(self) -> None:
        """Create the state dir (mode 0700, also when it exists) and a missing
        local work root (mode 0700; an existing one is left as it is, each
        job's work dir in it is 0700). Raises ``OSError``."""
        make_private_dir(self.state_dir)
        if not self.ssh_host:
            self.work_root.mkdir(parents=True, exist_ok=True, mode=0o700)
    log_format: str = "text"
    metrics_token: str = ""
    metrics_allowed_networks: tuple[str, ...] = ()
    secret_key: str = ""
    admin_cookie_secure: bool = True

    @property
    def ratelimit_storage_is_process_local(self) -> bool:
        """Whether rate-limit counters live in this process only (``memory://``):
        then several worker processes would each count separately."""
        return self.ratelimit_storage_uri.partition(":")[0] == "memory"

    @property
    def local_registry(self) -> Path:
        """The local executor's registry folder."""
        return self.state_dir / "local-executor"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        """Read ``QCOS_*`` variables; raises :class:`ConfigError` for a bad value."""
        env = os.environ if env is None else env
        state_dir = Path(env.get("QCOS_STATE_DIR") or REPO_ROOT / "var").resolve()
        database_url = env.get("QCOS_DATABASE_URL") or f"sqlite:///{state_dir / 'qcos.db'}"
        executor = env.get("QCOS_EXECUTOR", "local") or "local"
        if executor not in ("local", "slurm"):
            raise ConfigError(f"QCOS_EXECUTOR must be 'local' or 'slurm', not {executor!r}")
        ssh_host = (env.get("QCOS_SSH_HOST") or "").strip()
        ssh = {}
        if ssh_host:
            missing = [name for name in ("QCOS_SSH_USER", "QCOS_SSH_KEY", "QCOS_SSH_KNOWN_HOSTS", "QCOS_WORK_ROOT")
                       if not env.get(name)]
            if executor != "slurm" or missing:
                raise ConfigError("QCOS_SSH_HOST needs QCOS_EXECUTOR=slurm and "
                                  + ", ".join(missing or ["QCOS_EXECUTOR=slurm"]))
            if not env["QCOS_WORK_ROOT"].startswith("/"):
                raise ConfigError("QCOS_WORK_ROOT must be an absolute path on the cluster")
            ssh = {"ssh_host": ssh_host, "ssh_port": _whole_number(env, "QCOS_SSH_PORT", 22),
                   "ssh_user": env["QCOS_SSH_USER"], "ssh_key": Path(env["QCOS_SSH_KEY"]),
                   "ssh_known_hosts": Path(env["QCOS_SSH_KNOWN_HOSTS"])}
        # Over SSH the work root is a path on the cluster: never resolved here.
        work_root = Path(env["QCOS_WORK_ROOT"]) if ssh_host else Path(
            env.get("QCOS_WORK_ROOT") or state_dir / "jobs").resolve()
        return cls(
            state_dir=state_dir,
            database_url=normalize_database_url(database_url),
            executor=executor,
            cluster_profile=env.get("QCOS_CLUSTER_PROFILE") or "dev",
            work_root=work_root,
            slurm_account=(env.get("QCOS_SLURM_ACCOUNT") or "").strip(),
            max_waiting_requests=max(1, _whole_number(env, "QCOS_MAX_WAITING_REQUESTS", 16)),
            **ssh,
            poll_interval_seconds=_number(env, "QCOS_POLL_INTERVAL", 5.0, minimum=0.05),
            missing_grace_seconds=_number(env, "QCOS_MISSING_GRACE", 300.0),
            results_max_wait_seconds=_number(env, "QCOS_RESULTS_MAX_WAIT", 300.0),
            max_body_bytes=int(_number(env, "QCOS_MAX_BODY_BYTES", 2 * 1024 * 1024, minimum=1024)),
            log_level=(env.get("QCOS_LOG_LEVEL") or "INFO").upper(),
            ratelimit_enabled=_flag(env, "QCOS_RATELIMIT_ENABLED", True),
            ratelimit_storage_uri=(env.get("QCOS_RATELIMIT_STORAGE_URI") or "memory://").strip(),
            ratelimit_key_prefix=(env.get("QCOS_RATELIMIT_KEY_PREFIX") or "qcos").strip(),
            anon_rate_limit=_rate_limit(env, "QCOS_ANON_RATE_LIMIT", "60/minute"),
            trusted_proxies=_whole_number(env, "QCOS_TRUSTED_PROXIES", 0),
            cors_origins=_origins(env, "QCOS_CORS_ORIGINS"),
            pack_max_jobs=max(1, _whole_number(env, "QCOS_PACK_MAX_JOBS", 250)),
            pack_max_seconds=max(1, _whole_number(env, "QCOS_PACK_MAX_SECONDS", 900)),
            pack_max_state_bytes=_whole_number(env, "QCOS_PACK_MAX_STATE_BYTES", 1 << 30),
            pack_max_job_seconds=_whole_number(env, "QCOS_PACK_MAX_JOB_SECONDS", 120),
            pack_linger_seconds=_number(env, "QCOS_PACK_LINGER", 0.5),
            pack_max_linger_seconds=_number(env, "QCOS_PACK_MAX_LINGER", 10.0),
            max_live_slurm_jobs=max(1, _whole_number(env, "QCOS_MAX_LIVE_SLURM_JOBS", 8)),
            dispatch_interval_seconds=_number(env, "QCOS_DISPATCH_INTERVAL", 0.25, minimum=0.01),
            submit_recovery_seconds=_number(env, "QCOS_SUBMIT_RECOVERY", 15.0),
            slurm_command_timeout_seconds=_number(env, "QCOS_SLURM_COMMAND_TIMEOUT", 30.0, minimum=1),
            unknown_state_grace_seconds=_number(env, "QCOS_UNKNOWN_STATE_GRACE", 600.0),
            batch_max_circuits=max(1, _whole_number(env, "QCOS_BATCH_MAX_CIRCUITS", 1000)),
            max_batch_body_bytes=int(_number(env, "QCOS_MAX_BATCH_BODY_BYTES", 32 * 1024 * 1024, minimum=1024)),
            batch_validation_units=max(1, _whole_number(env, "QCOS_BATCH_VALIDATION_UNITS", 1_500_000)),
            public_url=_public_url(env, "QCOS_PUBLIC_URL"),
            log_format=_choice(env, "QCOS_LOG_FORMAT", ("text", "json")),
            metrics_token=(env.get("QCOS_METRICS_TOKEN") or "").strip(),
            metrics_allowed_networks=_networks(env, "QCOS_METRICS_ALLOWED_NETWORKS"),
            secret_key=env.get("QCOS_SECRET_KEY") or "",
            admin_cookie_secure=_flag(env, "QCOS_ADMIN_COOKIE_SECURE", True),
            **({"tiers_file": Path(env["QCOS_TIERS_FILE"]).resolve()} if env.get("QCOS_TIERS_FILE") else {}),
        )
