"""Gateway configuration: one object, read from the environment once (pydantic-settings).

Every variable is optional; the defaults are the embedded setup of
``make run`` (SQLite file and the local executor under ``./var``). An empty
variable counts as unset.

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
``QCOS_RATELIMIT_CHECK_TTL``    seconds ``GET /`` reuses its check (a PING)
                                of shared rate-limit storage, success or
                                failure (1; 0: check every time)
``QCOS_ANON_RATE_LIMIT``        limit per client address for requests without
                                a valid API key, in ``limits`` notation, e.g.
                                ``60/minute`` (default) or ``5/second;100/hour``
``QCOS_TRUSTED_PROXIES``        number of reverse proxies in front of the
                                gateway whose ``X-Forwarded-For`` is trusted
                                for the client address (default 0: use the
                                TCP peer address, ignore the header)
``QCOS_BIND``                   gunicorn's address (``127.0.0.1:8000``)
``QCOS_WORKERS``                gunicorn worker processes (min(4, CPUs))
``QCOS_THREADS``                threads per worker process (32)
``QCOS_CLIENT_READ_TIMEOUT``    seconds a request thread waits for a client:
                                its request line and headers must arrive
                                within it, and its body may pause no longer
                                (10); then 408 and the connection is closed
``QCOS_DB_POOL_SIZE``           PostgreSQL connections each process keeps
                                open (5)
``QCOS_DB_MAX_OVERFLOW``        connections a process may open beyond the
                                pool under load, closed again after use (0)
``QCOS_DB_POOL_TIMEOUT``        seconds a request waits for a free pooled
                                connection before it is answered 503 (10)
``QCOS_GATEWAY_INSTANCES``      gateway hosts sharing the database, for the
                                connection budget check at start (1)
``QCOS_AUTH_CACHE_TTL``         seconds a looked-up API key may be reused
                                without a query, PostgreSQL only (5; 0: look
                                every key up on every request)
``QCOS_JOB_COUNT_CACHE_TTL``    seconds ``GET /user/me`` may show a user's
                                job counts read before, per process (1;
                                0: read them every time)
``QCOS_FINAL_JOB_CACHE_MB``     MiB per process for caching what the API
                                shows of final jobs, which never change (16;
                                0: none)
``QCOS_DB_PING_TTL``            seconds a successful database check of
                                ``GET /`` is reused (1; 0: check every time)
``QCOS_BENCH_ENDPOINT``         ``true`` adds ``GET /bench/trivial``, the
                                baseline of ``tests.bench_http`` (false)
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

Adding a setting: one field with ``validation_alias="QCOS_<NAME>"`` and the
line above. :meth:`Settings.from_env` turns any invalid value into a
:class:`ConfigError` naming the variable.
"""

from __future__ import annotations

import multiprocessing
import os
import re
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Literal, Mapping

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, EnvSettingsSource, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

#: The checkout: the default state dir is its ``var/``, wherever ``qcos`` runs from.
REPO_ROOT = Path(__file__).resolve().parents[1]


class ConfigError(ValueError):
    """An environment variable holds a value the gateway cannot use."""


_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?")


def _words(value: object) -> object:
    """A comma- or space-separated variable as a tuple (a tuple passes as it is)."""
    return tuple(value.replace(",", " ").split()) if isinstance(value, str) else value


def _origins(origins: tuple[str, ...]) -> tuple[str, ...]:
    for origin in origins:
        # Exact origins only: Flask-CORS would read "(", "*", "$"... as a regular expression.
        if origin != "*" and not _ORIGIN.fullmatch(origin):
            raise ValueError(f"must list origins such as https://app.example.org:8443 (scheme, host, "
                             f"optional port; no path) or '*', not {origin!r}")
    if "*" in origins and len(origins) > 1:
        raise ValueError("'*' allows every origin; list no others with it")
    return origins


def make_private_dir(path: Path) -> Path:
    """Create ``path`` (with missing parents) and make it mode 0700: readable
    by the service user only, whatever the umask. Returns ``path``.
    Raises ``OSError``."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)
    return path


def _public_url(raw: str) -> str:
    from urllib.parse import urlsplit

    if not raw:
        return ""
    parts = urlsplit(raw)
    if (parts.scheme not in ("http", "https") or not parts.hostname or parts.username is not None
            or parts.query or parts.fragment or not raw.isascii() or any(c.isspace() for c in raw)):
        raise ValueError("must be an http(s) URL such as https://qcos.example.org, without user, query or fragment")
    try:
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        raise ValueError("has an invalid port") from None
    return raw.rstrip("/")


def _networks(value: object) -> object:
    import ipaddress

    if not isinstance(value, str):
        return value
    networks = []
    for item in value.split(","):
        if item.strip():
            try:
                networks.append(str(ipaddress.ip_network(item.strip(), strict=False)))
            except ValueError:
                raise ValueError(f"{item.strip()!r} is not an IP address or network") from None
    return tuple(networks)


def _lower(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


def normalize_database_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL URLs that name no driver (``postgresql://``)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _rate_limit(value: str) -> str:
    from limits import parse_many

    try:
        parse_many(value)
    except ValueError:
        raise ValueError("must be a rate limit such as '60/minute' or '5/second;100/hour'") from None
    return value


def _resolved(path: Path) -> Path:
    return path.resolve()


#: The mapping :meth:`Settings.from_env` reads instead of ``os.environ``, while it runs.
_ENVIRONMENT: ContextVar[Mapping[str, str] | None] = ContextVar("qcos_settings_environment", default=None)


class _MappingSource(EnvSettingsSource):
    """pydantic-settings' environment source, reading a given mapping."""

    def __init__(self, settings_cls: type[BaseSettings], mapping: Mapping[str, str]) -> None:
        self._mapping = mapping
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {name: value for name, value in self._mapping.items() if not (self.env_ignore_empty and value == "")}


def _env(name: str) -> str:
    return "QCOS_" + name


class Settings(BaseSettings):
    """The gateway's configuration; see the module docstring for the variables.

    Immutable; ``settings.model_copy(update={...})`` makes a changed copy
    (not validated: for tests).
    """

    model_config = SettingsConfigDict(frozen=True, extra="ignore", case_sensitive=True, env_ignore_empty=True,
                                      str_strip_whitespace=True, populate_by_name=True)

    state_dir: Annotated[Path, AfterValidator(_resolved)] = Field(
        default_factory=lambda: REPO_ROOT / "var", validation_alias=_env("STATE_DIR"))
    database_url: Annotated[str, AfterValidator(normalize_database_url)] = Field(
        default_factory=lambda data: f"sqlite:///{data['state_dir'] / 'qcos.db'}", validation_alias=_env("DATABASE_URL"))
    executor: Literal["local", "slurm"] = Field("local", validation_alias=_env("EXECUTOR"))
    cluster_profile: str = Field("dev", validation_alias=_env("CLUSTER_PROFILE"))
    ssh_host: str = Field("", validation_alias=_env("SSH_HOST"))
    ssh_port: int = Field(22, ge=1, le=65535, validation_alias=_env("SSH_PORT"))
    ssh_user: str = Field("", validation_alias=_env("SSH_USER"))
    ssh_key: Path | None = Field(None, validation_alias=_env("SSH_KEY"))
    ssh_known_hosts: Path | None = Field(None, validation_alias=_env("SSH_KNOWN_HOSTS"))
    #: Over SSH a path on the cluster, taken as given; otherwise resolved here.
    work_root: Path = Field(default_factory=lambda data: data["state_dir"] / "jobs",
                            validation_alias=_env("WORK_ROOT"))
    poll_interval_seconds: float = Field(5.0, ge=0.05, validation_alias=_env("POLL_INTERVAL"))
    missing_grace_seconds: float = Field(300.0, ge=0, validation_alias=_env("MISSING_GRACE"))
    results_max_wait_seconds: float = Field(300.0, ge=0, validation_alias=_env("RESULTS_MAX_WAIT"))
    max_body_bytes: int = Field(2 * 1024 * 1024, ge=1024, validation_alias=_env("MAX_BODY_BYTES"))
    log_level: Annotated[str, AfterValidator(str.upper)] = Field("INFO", validation_alias=_env("LOG_LEVEL"))
    tiers_file: Annotated[Path, AfterValidator(_resolved)] = Field(
        REPO_ROOT / "deploy" / "tiers.toml", validation_alias=_env("TIERS_FILE"))
    slurm_account: str = Field("", validation_alias=_env("SLURM_ACCOUNT"))
    max_waiting_requests: int = Field(16, ge=1, validation_alias=_env("MAX_WAITING_REQUESTS"))
    ratelimit_enabled: bool = Field(True, validation_alias=_env("RATELIMIT_ENABLED"))
    ratelimit_storage_uri: str = Field("memory://", validation_alias=_env("RATELIMIT_STORAGE_URI"))
    ratelimit_key_prefix: str = Field("qcos", validation_alias=_env("RATELIMIT_KEY_PREFIX"))
    ratelimit_check_ttl_seconds: float = Field(1.0, ge=0, validation_alias=_env("RATELIMIT_CHECK_TTL"))
    anon_rate_limit: Annotated[str, AfterValidator(_rate_limit)] = Field(
        "60/minute", validation_alias=_env("ANON_RATE_LIMIT"))
    trusted_proxies: int = Field(0, ge=0, validation_alias=_env("TRUSTED_PROXIES"))
    cors_origins: Annotated[tuple[str, ...], NoDecode, BeforeValidator(_words), AfterValidator(_origins)] = Field(
        (), validation_alias=_env("CORS_ORIGINS"))
    # The dispatcher and packs (gateway/dispatcher.py, hpc_jobs/packing.py).
    pack_max_jobs: int = Field(250, ge=1, validation_alias=_env("PACK_MAX_JOBS"))
    pack_max_seconds: int = Field(900, ge=1, validation_alias=_env("PACK_MAX_SECONDS"))
    pack_max_state_bytes: int = Field(1 << 30, ge=0, validation_alias=_env("PACK_MAX_STATE_BYTES"))
    pack_max_job_seconds: int = Field(120, ge=0, validation_alias=_env("PACK_MAX_JOB_SECONDS"))
    pack_linger_seconds: float = Field(0.5, ge=0, validation_alias=_env("PACK_LINGER"))
    pack_max_linger_seconds: float = Field(10.0, ge=0, validation_alias=_env("PACK_MAX_LINGER"))
    max_live_slurm_jobs: int = Field(8, ge=1, validation_alias=_env("MAX_LIVE_SLURM_JOBS"))
    dispatch_interval_seconds: float = Field(0.25, ge=0.01, validation_alias=_env("DISPATCH_INTERVAL"))
    submit_recovery_seconds: float = Field(15.0, ge=0, validation_alias=_env("SUBMIT_RECOVERY"))
    slurm_command_timeout_seconds: float = Field(30.0, ge=1, validation_alias=_env("SLURM_COMMAND_TIMEOUT"))
    unknown_state_grace_seconds: float = Field(600.0, ge=0, validation_alias=_env("UNKNOWN_STATE_GRACE"))
    batch_max_circuits: int = Field(1000, ge=1, validation_alias=_env("BATCH_MAX_CIRCUITS"))
    max_batch_body_bytes: int = Field(32 * 1024 * 1024, ge=1024, validation_alias=_env("MAX_BATCH_BODY_BYTES"))
    batch_validation_units: int = Field(1_500_000, ge=1, validation_alias=_env("BATCH_VALIDATION_UNITS"))
    public_url: Annotated[str, AfterValidator(_public_url)] = Field("", validation_alias=_env("PUBLIC_URL"))
    log_format: Annotated[Literal["text", "json"], BeforeValidator(_lower)] = Field(
        "text", validation_alias=_env("LOG_FORMAT"))
    metrics_token: str = Field("", validation_alias=_env("METRICS_TOKEN"))
    metrics_allowed_networks: Annotated[tuple[str, ...], NoDecode, BeforeValidator(_networks)] = Field(
        (), validation_alias=_env("METRICS_ALLOWED_NETWORKS"))
    secret_key: str = Field("", validation_alias=_env("SECRET_KEY"))
    admin_cookie_secure: bool = Field(True, validation_alias=_env("ADMIN_COOKIE_SECURE"))
    bind: str = Field("127.0.0.1:8000", validation_alias=_env("BIND"))
    workers: int = Field(default_factory=lambda: min(4, multiprocessing.cpu_count()), ge=1,
                         validation_alias=_env("WORKERS"))
    threads: int = Field(32, ge=1, validation_alias=_env("THREADS"))
    client_read_timeout_seconds: float = Field(10.0, gt=0, validation_alias=_env("CLIENT_READ_TIMEOUT"))
    db_pool_size: int = Field(5, ge=1, validation_alias=_env("DB_POOL_SIZE"))
    db_max_overflow: int = Field(0, ge=0, validation_alias=_env("DB_MAX_OVERFLOW"))
    db_pool_timeout_seconds: float = Field(10.0, gt=0, validation_alias=_env("DB_POOL_TIMEOUT"))
    gateway_instances: int = Field(1, ge=1, validation_alias=_env("GATEWAY_INSTANCES"))
    auth_cache_seconds: float = Field(5.0, ge=0, validation_alias=_env("AUTH_CACHE_TTL"))
    job_count_cache_seconds: float = Field(1.0, ge=0, validation_alias=_env("JOB_COUNT_CACHE_TTL"))
    final_job_cache_mb: float = Field(16.0, ge=0, validation_alias=_env("FINAL_JOB_CACHE_MB"))
    db_ping_ttl_seconds: float = Field(1.0, ge=0, validation_alias=_env("DB_PING_TTL"))
    bench_endpoint: bool = Field(False, validation_alias=_env("BENCH_ENDPOINT"))

    @property
    def pack_limits(self):
        """The :class:`hpc_jobs.packing.PackLimits` these settings give."""
        from hpc_jobs.packing import PackLimits

        return PackLimits(max_jobs=self.pack_max_jobs, max_seconds=self.pack_max_seconds,
                          max_state_bytes=self.pack_max_state_bytes, max_job_seconds=self.pack_max_job_seconds,
                          linger_seconds=self.pack_linger_seconds, max_linger_seconds=self.pack_max_linger_seconds)

    def prepare_dirs(self) -> None:
        """Create the state dir (mode 0700, also when it exists) and a missing
        local work root (mode 0700; an existing one is left as it is, each
        job's work dir in it is 0700). Raises ``OSError``."""
        make_private_dir(self.state_dir)
        if not self.ssh_host:
            self.work_root.mkdir(parents=True, exist_ok=True, mode=0o700)

    @field_validator("work_root")
    @classmethod
    def _work_root(cls, value: Path, info: ValidationInfo) -> Path:
        if info.data.get("ssh_host"):
            if not value.is_absolute():
                raise ValueError("must be an absolute path on the cluster")
            return value
        return value.resolve()

    @model_validator(mode="after")
    def _ssh_needs_slurm_and_credentials(self) -> "Settings":
        if self.ssh_host:
            given = {"QCOS_SSH_USER": self.ssh_user, "QCOS_SSH_KEY": self.ssh_key,
                     "QCOS_SSH_KNOWN_HOSTS": self.ssh_known_hosts,
                     "QCOS_WORK_ROOT": "work_root" in self.model_fields_set}
            missing = [name for name, value in given.items() if not value]
            if self.executor != "slurm" or missing:
                raise ValueError("QCOS_SSH_HOST needs QCOS_EXECUTOR=slurm and "
                                 + ", ".join(missing or ["QCOS_EXECUTOR=slurm"]))
        return self

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Keyword arguments, then the environment (or :meth:`from_env`'s mapping); no .env or secret files."""
        mapping = _ENVIRONMENT.get()
        return init_settings, (env_settings if mapping is None else _MappingSource(settings_cls, mapping))

    @property
    def ratelimit_storage_is_process_local(self) -> bool:
        """Whether rate-limit counters live in this process only (``memory://``):
        then several worker processes would each count separately."""
        return self.ratelimit_storage_uri.partition(":")[0] == "memory"

    @property
    def local_registry(self) -> Path:
        """The local executor's registry folder."""
        return self.state_dir / "local-executor"

    @property
    def uses_postgresql(self) -> bool:
        return self.database_url.startswith("postgresql")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        """Read the ``QCOS_*`` variables of ``env`` (default ``os.environ``).

        Raises :class:`ConfigError` naming each bad variable and why.
        """
        token = _ENVIRONMENT.set(os.environ if env is None else env)
        try:
            return cls()
        except ValidationError as exc:
            raise ConfigError(describe(exc)) from None
        finally:
            _ENVIRONMENT.reset(token)


def describe(exc: ValidationError) -> str:
    """One line per problem: ``QCOS_NAME: what is wrong (got 'value')``."""
    problems = []
    for error in exc.errors(include_url=False):
        if error["type"] == "default_factory_not_called":  # follows from another field's error
            continue
        message = error["msg"].removeprefix("Value error, ")
        where = ".".join(str(part) for part in error["loc"])
        got = error.get("input")
        shown = f" (got {got!r})" if isinstance(got, str) and where else ""
        problems.append(f"{where}: {message}{shown}" if where else message)
    return "; ".join(problems)
