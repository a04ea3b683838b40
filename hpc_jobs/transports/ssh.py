"""Run Slurm commands and move work dirs on a login node over SSH (paramiko).

One :class:`SSHTransport` holds one SSH connection per process, opened on the
first call and reused by every command and SFTP operation after it (each is
a channel on that connection). The remote side of ``exec`` is the login
user's shell, so every argv is quoted here, in :func:`remote_command`, and
nowhere else.

Host keys are checked against an operator-provided known_hosts file and
nothing else: an unknown or changed key is refused, never learned.
"""

from __future__ import annotations

import logging
import math
import os
import posixpath
import re
import shlex
import stat
import threading
import time
import weakref
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator, Mapping, Sequence, TypeVar

import paramiko

from hpc_jobs import metrics
from hpc_jobs.transports.base import CommandResult, TransportError

__all__ = ["MAX_READ_BYTES", "REMOTE_KILL_AFTER", "SSHTransport", "remote_command"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Largest file :meth:`SSHTransport.read_texts` returns, in bytes. Work dir
#: files the gateway reads (result.json, error.json, stderr.log) are far
#: smaller; a bigger one is a runaway job, not something to load into memory.
MAX_READ_BYTES = 16 * 1024 * 1024

#: Seconds between the SIGTERM and the SIGKILL that end a remote command past its timeout.
REMOTE_KILL_AFTER = 2

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CHUNK = 65536


def remote_command(argv: Sequence[str], env: Mapping[str, str] | None = None) -> str:
    """The shell command line that runs ``argv`` verbatim on the remote side.

    Each element is quoted with :func:`shlex.quote`, so spaces, quotes,
    ``$(...)``, ``;`` and newlines reach the program unchanged. ``env``
    entries come first as ``NAME=value`` assignments (value quoted), which
    POSIX shells apply to that one command.

    Raises ``ValueError`` for an empty argv, a NUL character (it cannot
    cross a shell command line) or an invalid variable name.
    """
    words = [os.fspath(a) for a in argv]
    if not words:
        raise ValueError("cannot run an empty argv")
    assignments = []
    for name, value in (env or {}).items():
        if not _ENV_NAME.fullmatch(name):
            raise ValueError(f"invalid environment variable name {name!r}")
        assignments.append(f"{name}={shlex.quote(str(value))}")
    for word in [*words, *(env or {}).values()]:
        if "\0" in str(word):
            raise ValueError(f"a NUL character cannot be passed to a remote command: {word!r}")
    return " ".join([*assignments, *(shlex.quote(w) for w in words)])


class _UnknownHostKey(paramiko.SSHException):
    pass


class _RefuseUnknownHostKey(paramiko.MissingHostKeyPolicy):
    """Like paramiko's RejectPolicy, with a message that tells the operator what to do."""

    def __init__(self, known_hosts: Path) -> None:
        self._known_hosts = known_hosts

    def missing_host_key(self, client, hostname, key):
        raise _UnknownHostKey(
            f"the host key of {hostname} ({key.get_name()} {key.fingerprint}) is not in "
            f"{self._known_hosts}; refusing to connect. Verify the fingerprint with the "
            f"cluster's administrators, then add the key (e.g. ssh-keyscan) to that file"
        )


# Transports alive in this process, so a fork can reset them in the child.
_INSTANCES: "weakref.WeakSet[SSHTransport]" = weakref.WeakSet()
# Connections inherited across a fork. Kept referenced so that garbage
# collection never runs paramiko's close logic on them in the child (which
# would talk over the parent's session or wait on a lock that a thread of the
# parent held when it forked).
_ABANDONED: list[paramiko.SSHClient] = []


def _after_fork_in_child() -> None:
    for transport in list(_INSTANCES):
        # The lock may have been held by a parent thread that does not exist here.
        transport._lock = threading.Lock()
        transport._forget_inherited()


os.register_at_fork(after_in_child=_after_fork_in_child)


class SSHTransport:
    """Runs argv lists on ``host`` over one persistent SSH connection (implements
    :class:`~hpc_jobs.transports.base.Transport`), and reads and writes files
    there over SFTP.

    ``host``/``port``: the login node. ``username``: the remote account.
    ``key_filename``: a private key without passphrase (ed25519, ECDSA or
    RSA), read at each connect. ``known_hosts``: an OpenSSH known_hosts file
    that must hold the login node's host key (``[host]:port`` entries for a
    port other than 22); unknown and changed keys are refused.
    ``connect_timeout``: seconds for TCP connect, SSH handshake and
    authentication, each. ``keepalive``: seconds between SSH keepalive
    messages (0: none), so idle connections survive NAT and firewalls.
    ``env``: variables set for every remote command (e.g. ``SLURM_CONF``);
    ``ValueError`` for an invalid name.

    Thread-safe: threads share the connection, each command on its own
    channel; at most ``max_sessions`` channels are open at once (OpenSSH's
    ``MaxSessions`` is 10 by default), further threads wait their turn
    within their timeout. Fork-safe: a forked child never touches the connection it
    inherited and opens its own. Nothing connects before the first call.

    Every failure to reach the host is a :class:`TransportError`. A dead
    connection is replaced once per call, and only before the command was
    sent: a command that may have run (an ``sbatch``) is never sent twice.
    """

    def __init__(
        self,
        host: str,
        *,
        port: int = 22,
        username: str,
        key_filename: str | os.PathLike[str],
        known_hosts: str | os.PathLike[str],
        connect_timeout: float = 10.0,
        keepalive: int = 30,
        env: Mapping[str, str] | None = None,
        max_sessions: int = 8,
    ) -> None:
        self.host = host
        self.port = int(port)
        self.username = username
        self.key_filename = Path(key_filename)
        self.known_hosts = Path(known_hosts)
        self.connect_timeout = float(connect_timeout)
        self.keepalive = int(keepalive)
        self._env = dict(env or {})
        remote_command(["true"], self._env)  # validates the names now, not at the first job
        self._lock = threading.Lock()
        # OpenSSH refuses channels beyond MaxSessions (10 by default) on one
        # connection; threads wait for a free one instead of failing.
        self._sessions = threading.BoundedSemaphore(max(1, int(max_sessions)))
        self._client: paramiko.SSHClient | None = None
        self._owner_pid: int | None = None
        self._connections_opened = 0
        _INSTANCES.add(self)

    def __repr__(self) -> str:
        return f"SSHTransport({self._where})"

    @property
    def _where(self) -> str:
        return f"{self.username}@{self.host}:{self.port}"

    @property
    def connections_opened(self) -> int:
        """How many SSH connections this process has opened so far (1 while the first one lasts)."""
        return self._connections_opened

    # ------------------------------------------------------------------ connection

    def _forget_inherited(self) -> None:
        """Drop a connection opened by the parent process, without closing the parent's session."""
        client, self._client = self._client, None
        if client is None:
            return
        _ABANDONED.append(client)
        ssh = client.get_transport()
        if ssh is not None:
            try:
                # Closes only this process's copy of the descriptor; the
                # parent's socket stays open (no shutdown()).
                ssh.sock.close()
            except OSError:
                pass
        self._connections_opened = 0

    def _connected(self) -> paramiko.Transport:
        """This process's live connection, opened if needed."""
        with self._lock:
            if self._client is not None and self._owner_pid != os.getpid():
                self._forget_inherited()
            ssh = self._client.get_transport() if self._client is not None else None
            if ssh is None or not ssh.is_active():
                if self._client is not None:
                    self._client.close()
                    self._client = None
                self._client = self._connect()
                self._owner_pid = os.getpid()
                metrics.SSH_CONNECTIONS_OPENED.inc()
                if self._connections_opened:
                    metrics.SSH_RECONNECTS.inc()
                self._connections_opened += 1
                ssh = self._client.get_transport()
            assert ssh is not None
            return ssh

    def _connect(self) -> paramiko.SSHClient:
        try:
            key = paramiko.PKey.from_path(self.key_filename)
        except OSError as exc:
            raise TransportError(f"cannot read the SSH key {self.key_filename}: {exc.strerror or exc}") from exc
        except paramiko.PasswordRequiredException as exc:
            raise TransportError(
                f"the SSH key {self.key_filename} is encrypted; the gateway needs a key without passphrase"
            ) from exc
        except (paramiko.SSHException, ValueError) as exc:
            raise TransportError(f"the SSH key {self.key_filename} cannot be loaded: {exc}") from exc
        client = paramiko.SSHClient()
        try:
            client.load_host_keys(str(self.known_hosts))
        except OSError as exc:
            raise TransportError(f"cannot read the known_hosts file {self.known_hosts}: {exc.strerror or exc}") from exc
        client.set_missing_host_key_policy(_RefuseUnknownHostKey(self.known_hosts))
        try:
            client.connect(
                self.host,
                port=self.port,
                username=self.username,
                pkey=key,
                look_for_keys=False,
                allow_agent=False,
                timeout=self.connect_timeout,
                banner_timeout=self.connect_timeout,
                auth_timeout=self.connect_timeout,
            )
        except _UnknownHostKey as exc:
            client.close()
            raise TransportError(str(exc)) from exc
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise TransportError(
                f"the host key of {self.host}:{self.port} has CHANGED: the server sent "
                f"{exc.key.get_name()} {exc.key.fingerprint}, {self.known_hosts} expects "
                f"{exc.expected_key.get_name()} {exc.expected_key.fingerprint}; refusing to connect "
                f"(the host was reinstalled, or someone is intercepting the connection)"
            ) from exc
        except paramiko.AuthenticationException as exc:
            client.close()
            raise TransportError(
                f"SSH authentication as {self._where} with the key {self.key_filename} failed "
                f"({exc}); is its public key in the remote user's authorized_keys?"
            ) from exc
        except paramiko.SSHException as exc:
            client.close()
            raise TransportError(f"SSH handshake with {self.host}:{self.port} failed: {exc}") from exc
        except (OSError, EOFError) as exc:
            client.close()
            raise TransportError(f"cannot connect to {self.host}:{self.port}: {exc}") from exc
        ssh = client.get_transport()
        assert ssh is not None
        if self.keepalive > 0:
            ssh.set_keepalive(self.keepalive)
        log.info("SSH connection to %s opened (pid %d)", self._where, os.getpid())
        return client

    def _discard(self, ssh: paramiko.Transport) -> None:
        """Close ``ssh`` if it is still this process's connection (another thread may have replaced it)."""
        with self._lock:
            if self._client is not None and self._client.get_transport() is ssh and self._owner_pid == os.getpid():
                self._client.close()
                self._client = None

    def _with_channel(self, open_: Callable[[paramiko.Transport], T], what: str) -> T:
        """``open_(connection)``, on a fresh connection once more if the current one turns out dead.

        Only the opening is retried: nothing has reached the remote program yet.
        """
        for attempt in (1, 2):
            ssh = self._connected()
            try:
                return open_(ssh)
            except paramiko.ChannelException as exc:
                if ssh.is_active():
                    # The server is there and said no (MaxSessions reached...).
                    raise TransportError(f"{self._where} refused a new SSH channel for {what}: {exc}") from exc
                failure: Exception = exc
            except (paramiko.SSHException, OSError, EOFError) as exc:
                failure = exc
            self._discard(ssh)
            if attempt == 1:
                log.warning("SSH connection to %s lost (%s); reconnecting", self._where, failure)
        raise TransportError(f"could not open {what} on {self._where}, even on a new connection: {failure}")

    def close(self) -> None:
        """Close this process's connection (a later call opens a new one)."""
        with self._lock:
            if self._client is not None and self._owner_pid == os.getpid():
                self._client.close()
            elif self._client is not None:
                self._forget_inherited()
            self._client = None

    def __enter__(self) -> "SSHTransport":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ commands

    @metrics.observe_command
    def run(self, argv: Sequence[str], *, timeout: float = 30.0) -> CommandResult:
        """Run ``argv`` on the remote host; ``timeout``: seconds from the call
        to the exit status (connecting has its own ``connect_timeout``).

        stdout and stderr are read together as they arrive, so a command that
        fills both cannot stall. ``returncode`` is -1 when the remote program
        died of a signal (SSH reports no exit status then). Raises
        :class:`TransportError` when the host cannot be reached, the
        connection is lost or the command overruns ``timeout``; in the last
        two cases the remote program may have run.

        The remote program runs under coreutils ``timeout`` (which the login
        node must have), so it ends about a second after ``timeout`` even if
        this side gave up or the connection died: it gets SIGTERM, SIGKILL
        :data:`REMOTE_KILL_AFTER` seconds later, and so does every process
        it started. (Closing the channel alone ends nothing: without a pty
        the program gets no SIGHUP, and a hanging ``squeue`` that writes
        nothing never sees a broken pipe. A pty would merge stderr into
        stdout, which the Slurm parsers read apart, and would need a live
        connection to deliver the hang-up.) Raises ``ValueError`` for an argv
        :func:`remote_command` refuses.
        """
        remote_command(argv, self._env)  # refuse a bad argv before waiting for a session
        deadline = time.monotonic() + timeout
        name = os.fspath(argv[0])
        if not self._sessions.acquire(timeout=timeout):
            raise TransportError(f"{name}: no free SSH session to {self._where} within {timeout:g} s")
        try:
            # Whole seconds, one more than what is left: this side gives up first.
            seconds = math.ceil(max(0.0, deadline - time.monotonic())) + 1
            bounded = ["timeout", f"--kill-after={REMOTE_KILL_AFTER}", str(seconds), *argv]
            return self._run(argv, remote_command(bounded, self._env), name, deadline, timeout)
        finally:
            self._sessions.release()

    def _run(self, argv: Sequence[str], command: str, name: str, deadline: float, timeout: float) -> CommandResult:

        def open_session(ssh: paramiko.Transport) -> paramiko.Channel:
            return ssh.open_session(timeout=max(0.1, min(self.connect_timeout, deadline - time.monotonic())))

        channel = self._with_channel(open_session, name)
        ssh = channel.get_transport()
        try:
            channel.settimeout(max(0.1, deadline - time.monotonic()))
            with _closed_at(channel, deadline):
                channel.exec_command(command)
            stdout, stderr = _drain(channel, deadline)
            if not channel.status_event.wait(max(0.0, deadline - time.monotonic())):
                raise _Overrun
        except _Overrun:
            raise TransportError(f"{name} did not finish within {timeout:g} s on {self.host}") from None
        except (paramiko.SSHException, OSError, EOFError) as exc:
            if time.monotonic() >= deadline:
                raise TransportError(f"{name} did not start within {timeout:g} s on {self.host}") from exc
            if not ssh.is_active():
                self._discard(ssh)
            raise TransportError(f"lost the SSH connection to {self._where} while running {name}: {exc}") from exc
        finally:
            channel.close()
        status = channel.exit_status
        # A program killed by a signal gets no exit status either, but its
        # output still ends with the server's EOF; a dying connection closes
        # the channel without one (and paramiko closes channels before it
        # marks the connection inactive, so is_active() alone can lag).
        if status == -1 and (not channel.eof_received or not ssh.is_active()):
            self._discard(ssh)
            raise TransportError(f"lost the SSH connection to {self._where} while running {name}")
        return CommandResult(
            argv=tuple(os.fspath(a) for a in argv),
            returncode=status,
            stdout=stdout.decode("utf-8", "replace"),
            stderr=stderr.decode("utf-8", "replace"),
        )

    # ------------------------------------------------------------------ files (SFTP)

    @contextmanager
    def _sftp(self, timeout: float) -> Iterator[paramiko.SFTPClient]:
        if not self._sessions.acquire(timeout=timeout):
            raise TransportError(f"no free SSH session to {self._where} within {timeout:g} s")
        try:
            with self._sftp_session(timeout) as sftp:
                yield sftp
        finally:
            self._sessions.release()

    @contextmanager
    def _sftp_session(self, timeout: float) -> Iterator[paramiko.SFTPClient]:
        deadline = time.monotonic() + timeout

        def open_sftp(ssh: paramiko.Transport) -> paramiko.SFTPClient:
            channel = ssh.open_session(timeout=max(0.1, min(self.connect_timeout, timeout)))
            try:
                with _closed_at(channel, deadline):
                    channel.invoke_subsystem("sftp")
                # Bounds every SFTP request/response; a stuck server raises TimeoutError.
                channel.settimeout(timeout)
                return paramiko.SFTPClient(channel)
            except BaseException:
                channel.close()
                raise

        sftp = self._with_channel(open_sftp, "an SFTP session")
        try:
            yield sftp
        except (paramiko.SSHException, EOFError) as exc:
            raise TransportError(f"SFTP on {self._where} failed: {exc}") from exc
        except OSError as exc:
            if exc.errno is None:  # socket timeout, lost connection: not a file system answer
                raise TransportError(f"SFTP on {self._where} failed: {exc or 'timed out'}") from exc
            raise TransportError(f"SFTP on {self._where}: {exc.strerror or exc} ({exc.filename or ''})") from exc
        finally:
            try:
                sftp.close()
            except (paramiko.SSHException, OSError, EOFError):
                pass  # the connection is gone; the next call replaces it

    def read_texts(self, remote_paths: Sequence[str | os.PathLike[str]], *,
                   timeout: float = 30.0) -> list[str | None]:
        """The texts (UTF-8, undecodable bytes replaced) of many remote files,
        in order, in ONE SFTP session; ``timeout``: seconds for each SFTP request.

        A file that does not exist, cannot be read (permissions) or exceeds
        :data:`MAX_READ_BYTES` is ``None`` (the last two logged). Raises
        :class:`TransportError` only when the session itself fails: the host
        cannot be reached, or a request times out.
        """
        paths = [_remote_path(path) for path in remote_paths]
        texts: list[str | None] = []
        with self._sftp(timeout) as sftp:
            for path in paths:
                try:
                    data = _read_open(sftp, path, 0, refuse_larger=True, host=self.host)
                except TransportError as exc:
                    log.warning("%s", exc)
                    data = None
                except OSError as exc:
                    if exc.errno is None:  # the session, not the file: let it fail the call
                        raise
                    log.warning("cannot read %s on %s: %s", path, self.host, exc.strerror or exc)
                    data = None
                texts.append(None if data is None else data.decode("utf-8", "replace"))
        return texts

    def upload_dir(
        self, local_dir: str | os.PathLike[str], remote_dir: str | os.PathLike[str], *, timeout: float = 60.0
    ) -> None:
        """Copy the tree ``local_dir`` to the absolute path ``remote_dir`` (mode
        0700: job data belongs to the service user only).

        Files keep their permission bits. The copy is written to
        ``<remote_dir>.partial`` and renamed into place, so the remote side
        never sees a half-written work dir; an existing ``remote_dir`` is
        replaced, and missing parents are created (mode 0700). ``timeout``:
        seconds for each SFTP request. Raises :class:`TransportError`, or
        ``ValueError`` for a relative or root ``remote_dir``.
        """
        self.upload_dirs([(Path(local_dir), PurePosixPath(remote_dir))], timeout=timeout)

    def remove_tree(self, remote_dir: str | os.PathLike[str], *, timeout: float = 60.0) -> None:
        """Delete ``remote_dir`` and everything under it; a missing one is fine.

        Symbolic links are removed, never followed. Raises
        :class:`TransportError`, or ``ValueError`` for a relative or root path.
        """
        target = _remote_path(remote_dir)
        with self._sftp(timeout) as sftp:
            _remove(sftp, target)

    def upload_dirs(self, pairs: Sequence[tuple[Path, PurePosixPath]], *, timeout: float = 60.0) -> None:
        """:meth:`upload_dir` for several ``(local_dir, remote_dir)`` pairs in ONE
        SFTP session (a pack's job dirs and its own folder), each replaced
        atomically. Raises :class:`TransportError` (also for a missing local
        folder), or ``ValueError`` for a relative or root remote path."""
        for local, _ in pairs:
            if not Path(local).is_dir():
                raise TransportError(f"{local} is not a directory")
        with self._sftp(timeout) as sftp:
            for local, remote in pairs:
                target = _remote_path(remote)
                partial = target + ".partial"
                _remove(sftp, partial)
                _make_parents(sftp, posixpath.dirname(target))
                _put_tree(sftp, Path(local), partial)
                _remove(sftp, target)
                sftp.posix_rename(partial, target)

    def read_bytes_from(self, remote_path: str | os.PathLike[str], offset: int, *,
                        timeout: float = 30.0) -> bytes | None:
        """The remote file's bytes from ``offset`` on (at most :data:`MAX_READ_BYTES`),
        ``None`` if it does not exist: one open, one pipelined read. Raises
        :class:`TransportError`."""
        return self._read(_remote_path(remote_path), offset, timeout, refuse_larger=False)

    def _read(self, path: str, offset: int, timeout: float, *, refuse_larger: bool) -> bytes | None:
        """The bytes of ``path`` from ``offset`` on in one SFTP session (see :func:`_read_open`)."""
        with self._sftp(timeout) as sftp:
            return _read_open(sftp, path, offset, refuse_larger=refuse_larger, host=self.host)

    def touch_files(self, remote_paths: Sequence[PurePosixPath], *, timeout: float = 30.0) -> None:
        """Create empty files (markers) in one SFTP session; a missing parent
        folder is skipped. Raises :class:`TransportError`."""
        with self._sftp(timeout) as sftp:
            for remote in remote_paths:
                try:
                    sftp.open(_remote_path(remote), "w").close()
                except FileNotFoundError:
                    pass


# ---------------------------------------------------------------------- helpers


def _read_open(sftp: paramiko.SFTPClient, path: str, offset: int, *, refuse_larger: bool, host: str) -> bytes | None:
    """The bytes of ``path`` from ``offset`` on through an open SFTP session
    (one open, pipelined reads), ``None`` if it does not exist. Beyond
    :data:`MAX_READ_BYTES`: :class:`TransportError` with ``refuse_larger``,
    else the first that many bytes. File system errors are ``OSError``."""
    try:
        handle = sftp.open(path, "rb")
    except FileNotFoundError:
        return None
    too_large = f"{path} on {host} is larger than {MAX_READ_BYTES} bytes; not reading it"
    with handle:
        size = handle.stat().st_size or 0
        if refuse_larger and size > MAX_READ_BYTES:
            raise TransportError(too_large)
        if size <= offset:
            return b""
        handle.seek(offset)
        # Pipelined reads: one round trip per chunk would make a MiB-sized log take seconds.
        handle.prefetch(min(size - offset, MAX_READ_BYTES))
        # One byte past the limit, in case the file grew since the stat.
        data = handle.read(MAX_READ_BYTES + 1)
    if len(data) > MAX_READ_BYTES:
        if refuse_larger:
            raise TransportError(too_large)
        data = data[:MAX_READ_BYTES]
    return data


class _Overrun(Exception):
    pass


@contextmanager
def _closed_at(channel: paramiko.Channel, deadline: float) -> Iterator[None]:
    """Close ``channel`` if the block is still running at ``deadline``.

    paramiko waits for the server's answer to an exec/subsystem request
    without a timeout; closing the channel wakes that wait with an error.
    """
    timer = threading.Timer(max(0.0, deadline - time.monotonic()), channel.close)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def _drain(channel: paramiko.Channel, deadline: float) -> tuple[bytes, bytes]:
    """Read stdout and stderr to EOF at the same time, each in its own thread.

    Both streams share one SSH flow-control window: a reader that waited on
    one stream while the other filled the window would wait forever. (A
    select() on the channel's fileno looks tempting, but paramiko's
    stdout/stderr event pipe is not thread-safe and can lose a wakeup.)
    Raises :class:`_Overrun` at ``deadline``.
    """
    stderr = bytearray()
    failures: list[BaseException] = []

    def read_stderr() -> None:
        try:
            while chunk := channel.recv_stderr(_CHUNK):
                stderr.extend(chunk)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread
            failures.append(exc)

    reader = threading.Thread(target=read_stderr, name="ssh-stderr", daemon=True)
    reader.start()
    stdout = bytearray()
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _Overrun
            # Applies to both readers: each blocking recv ends by the deadline.
            channel.settimeout(remaining)
            try:
                chunk = channel.recv(_CHUNK)
            except TimeoutError:
                raise _Overrun from None
            if not chunk:
                break
            stdout.extend(chunk)
        reader.join(max(0.0, deadline - time.monotonic()))
        if reader.is_alive():
            raise _Overrun
    finally:
        if reader.is_alive():
            # Closing the channel ends the stderr reader's recv at once.
            channel.close()
            reader.join()
    if failures:
        if isinstance(failures[0], TimeoutError):
            raise _Overrun
        raise failures[0]
    return bytes(stdout), bytes(stderr)


def _remote_path(path: str | os.PathLike[str]) -> str:
    text = PurePosixPath(os.fspath(path)).as_posix()
    if not text.startswith("/") or text == "/":
        raise ValueError(f"a remote path must be absolute and not the root: {text!r}")
    return text


def _remove(sftp: paramiko.SFTPClient, path: str) -> None:
    try:
        attrs = sftp.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(attrs.st_mode or 0):
        for entry in sftp.listdir_attr(path):
            _remove(sftp, posixpath.join(path, entry.filename))
        sftp.rmdir(path)
    else:
        sftp.remove(path)


def _make_parents(sftp: paramiko.SFTPClient, path: str) -> None:
    missing = []
    while path not in ("", "/"):
        try:
            sftp.stat(path)
            break
        except FileNotFoundError:
            missing.append(path)
            path = posixpath.dirname(path)
    for directory in reversed(missing):
        sftp.mkdir(directory, 0o700)


def _put_tree(sftp: paramiko.SFTPClient, local: Path, remote: str) -> None:
    sftp.mkdir(remote, 0o700)
    # The server applies its umask to mkdir; set the mode we promise.
    sftp.chmod(remote, 0o700)
    for entry in sorted(local.iterdir()):
        target = posixpath.join(remote, entry.name)
        if entry.is_symlink():
            raise TransportError(f"{entry} is a symbolic link; work dirs hold plain files only")
        if entry.is_dir():
            _put_tree(sftp, entry, target)
        else:
            sftp.put(str(entry), target, confirm=True)
            sftp.chmod(target, stat.S_IMODE(entry.stat().st_mode))
