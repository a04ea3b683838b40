"""Gateway configuration: one object, read from the environment once (pydantic-settings).

Every variable is optional; the defaults are the embedded setup of
``make run`` (SQLite file and the local executor under ``./var``). An empty
variable counts as unset.

=============================== ============================================
``QCOS_STATE_DIR``              folder for the SQLite file, work dirs and the
                                local executor (default: ``var/`` in the
                                checkout)
``QCOS_DATABASE_URL``           SQLAlchemy URL; ``postgresql://…`` uses
                                psycopg 3 (default: SQLite in the state dir)
``QCOS_EXECUTOR``               ``local`` (default) or ``slurm``
``QCOS_CLUSTER_PROFILE``        profile name in ``deploy/profiles`` or a
                                path to a TOML file (default ``dev``)
``QCOS_WORK_ROOT``              where job work dirs go; must be visible to the
                                compute nodes for ``slurm`` (default
                                ``$QCOS_STATE_DIR/jobs``)
``QCOS_POLL_INTERVAL``          seconds between poller cycles (default 2)
``QCOS_MISSING_GRACE``          seconds a job may be absent from squeue and
                                sacct before it fails (default 300)
``QCOS_RESULTS_MAX_WAIT``       upper bound of ``/results?timeout=`` (300)
``QCOS_MAX_WAITING_REQUESTS``   requests per process that may block in
                                ``/results?wait=true`` at once (16); more are
                                answered without waiting
``QCOS_QUEUE_CHECK_TTL``        seconds ``queue_connected`` is cached (10)
``QCOS_MAX_BODY_BYTES``         largest request body accepted (2 MiB)
``QCOS_SLURM_ACCOUNT``          ``--account`` for every job, overriding the
                                profile's (LUMI: ``project_<id>``)
``QCOS_SSH_HOST``               run Slurm commands on this login node over
                                SSH (with ``QCOS_EXECUTOR=slurm``); work dirs
                                go to ``QCOS_WORK_ROOT`` on the cluster by SFTP
``QCOS_SSH_PORT``, ``QCOS_SSH_USER``, ``QCOS_SSH_KEY``, ``QCOS_SSH_KNOWN_HOSTS``
                                port (22), user, private key file and the
                                known_hosts file the host key must be in
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
``QCOS_BIND``                   gunicorn's address (``127.0.0.1:8000``)
``QCOS_WORKERS``                gunicorn worker processes (min(4, CPUs))
``QCOS_THREADS``                threads per worker process (32)
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
``QCOS_FINAL_JOB_CACHE_MB``     MiB per process for caching what the API
                                shows of final jobs, which never change (16;
                                0: none)
``QCOS_DB_PING_TTL``            seconds a successful database check of
                                ``GET /`` is reused (1; 0: check every time)
``QCOS_BENCH_ENDPOINT``         ``true`` adds ``GET /bench/trivial``, the
                                baseline of ``tests.bench_http`` (false)
=============================== ============================================

Adding a setting: one field with ``validation_alias="QCOS_<NAME>"`` and the
line above. :meth:`Settings.from_env` turns any invalid value into a
:class:`ConfigError` naming the variable.
"""

from __future__ import annotations

import multiprocessing
import os
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Literal, Mapping

from pydantic import AfterValidator, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

#: The checkout: the default state dir is its ``var/``, wherever ``qcos`` runs from.
REPO_ROOT = Path(__file__).resolve().parents[1]


class ConfigError(ValueError):
    """An environment variable holds a value the gateway cannot use."""


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
    poll_interval_seconds: float = Field(2.0, ge=0.05, validation_alias=_env("POLL_INTERVAL"))
    missing_grace_seconds: float = Field(300.0, ge=0, validation_alias=_env("MISSING_GRACE"))
    results_max_wait_seconds: float = Field(300.0, ge=0, validation_alias=_env("RESULTS_MAX_WAIT"))
    queue_check_ttl_seconds: float = Field(10.0, ge=0, validation_alias=_env("QUEUE_CHECK_TTL"))
    max_body_bytes: int = Field(2 * 1024 * 1024, ge=1024, validation_alias=_env("MAX_BODY_BYTES"))
    log_level: Annotated[str, AfterValidator(str.upper)] = Field("INFO", validation_alias=_env("LOG_LEVEL"))
    tiers_file: Annotated[Path, AfterValidator(_resolved)] = Field(
        REPO_ROOT / "deploy" / "tiers.toml", validation_alias=_env("TIERS_FILE"))
    slurm_account: str = Field("", validation_alias=_env("SLURM_ACCOUNT"))
    max_waiting_requests: int = Field(16, ge=1, validation_alias=_env("MAX_WAITING_REQUESTS"))
    ratelimit_enabled: bool = Field(True, validation_alias=_env("RATELIMIT_ENABLED"))
    ratelimit_storage_uri: str = Field("memory://", validation_alias=_env("RATELIMIT_STORAGE_URI"))
    ratelimit_key_prefix: str = Field("qcos", validation_alias=_env("RATELIMIT_KEY_PREFIX"))
    anon_rate_limit: Annotated[str, AfterValidator(_rate_limit)] = Field(
        "60/minute", validation_alias=_env("ANON_RATE_LIMIT"))
    trusted_proxies: int = Field(0, ge=0, validation_alias=_env("TRUSTED_PROXIES"))
    bind: str = Field("127.0.0.1:8000", validation_alias=_env("BIND"))
    workers: int = Field(default_factory=lambda: min(4, multiprocessing.cpu_count()), ge=1,
                         validation_alias=_env("WORKERS"))
    threads: int = Field(32, ge=1, validation_alias=_env("THREADS"))
    db_pool_size: int = Field(5, ge=1, validation_alias=_env("DB_POOL_SIZE"))
    db_max_overflow: int = Field(0, ge=0, validation_alias=_env("DB_MAX_OVERFLOW"))
    db_pool_timeout_seconds: float = Field(10.0, gt=0, validation_alias=_env("DB_POOL_TIMEOUT"))
    gateway_instances: int = Field(1, ge=1, validation_alias=_env("GATEWAY_INSTANCES"))
    auth_cache_seconds: float = Field(5.0, ge=0, validation_alias=_env("AUTH_CACHE_TTL"))
    final_job_cache_mb: float = Field(16.0, ge=0, validation_alias=_env("FINAL_JOB_CACHE_MB"))
    db_ping_ttl_seconds: float = Field(1.0, ge=0, validation_alias=_env("DB_PING_TTL"))
    bench_endpoint: bool = Field(False, validation_alias=_env("BENCH_ENDPOINT"))

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
