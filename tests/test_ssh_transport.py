"""SSHTransport against a real OpenSSH server (tests/sshd_fixtures.py), and
through it, the real local Slurm cluster."""

from __future__ import annotations

import os
import secrets
import stat
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from hpc_jobs.executors.slurm import SlurmExecutor
from hpc_jobs.lifecycle import base_state, status_for_slurm_state
from hpc_jobs.transports import SSHTransport, TransportError
from hpc_jobs.transports.ssh import MAX_READ_BYTES, remote_command
from hpc_jobs.workdir import SCRIPT_FILE, STDOUT_FILE
from tests.helpers import processes_with_argument, wait_for_observation
from tests.sshd_fixtures import SSHServer, free_port, generate_key

MiB = 1024 * 1024


@pytest.fixture
def ssh(sshd_server: SSHServer):  # noqa: F811
    transport = SSHTransport(sshd_server.host, **sshd_server.transport_kwargs())
    yield transport
    transport.close()


def transport_with(server: SSHServer, **overrides) -> SSHTransport:
    return SSHTransport(server.host, **{**server.transport_kwargs(), **overrides})


# ------------------------------------------------------------------ quoting (no server)


def test_remote_command_quotes_every_argument_once():
    assert remote_command(["squeue", "--format=%i|%T", "a b"]) == "squeue '--format=%i|%T' 'a b'"
    assert remote_command(["echo", "it's"]) == "echo 'it'\"'\"'s'"


def test_remote_command_puts_the_environment_first():
    assert remote_command(["sbatch"], {"SLURM_CONF": "/etc/slurm x.conf"}) == "SLURM_CONF='/etc/slurm x.conf' sbatch"


@pytest.mark.parametrize(
    "argv, env",
    [([], None), (["echo", "a\0b"], None), (["true"], {"BAD-NAME": "x"}), (["true"], {"X; rm": "x"})],
)
def test_remote_command_refuses_what_a_shell_line_cannot_carry(argv, env):
    with pytest.raises(ValueError):
        remote_command(argv, env)


# ------------------------------------------------------------------ commands


def test_run_returns_stdout_stderr_and_exit_status(ssh):
    assert ssh.run(["echo", "hello"]).stdout == "hello\n"
    result = ssh.run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert result.argv == ("sh", "-c", "echo out; echo err >&2; exit 3")


def test_a_program_killed_by_a_signal_has_returncode_minus_one(ssh):
    result = ssh.run(["sh", "-c", "echo before; kill -KILL $$"])
    assert (result.returncode, result.stdout) == (-1, "before\n")
    assert ssh.run(["true"]).returncode == 0
    assert ssh.connections_opened == 1


def test_arguments_arrive_verbatim(ssh, tmp_path):
    marker = tmp_path / "pwned"
    args = [
        "a b", "it's", '"double"', f"$(touch {marker})", f"`touch {marker}`", "; touch /nonexistent",
        "line1\nline2", "*", "~", "$HOME", "", "-n", "back\\slash", "tab\there", "ünïcode",
    ]
    result = ssh.run(["printf", "%s\\0", *args])
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\0")[:-1] == args
    assert not marker.exists()


def test_environment_variables_reach_the_command(sshd_server):  # noqa: F811
    with transport_with(sshd_server, env={"QCOS_PROBE": "x y $(z) 'q'"}) as ssh:
        assert ssh.run(["sh", "-c", 'printf %s "$QCOS_PROBE"']).stdout == "x y $(z) 'q'"


def test_megabytes_on_both_streams_do_not_stall(ssh):
    size = 6 * MiB
    script = f"head -c {size} /dev/zero | tr '\\0' o & head -c {size} /dev/zero | tr '\\0' e >&2; wait"
    started = time.monotonic()
    result = ssh.run(["sh", "-c", script], timeout=60)
    assert time.monotonic() - started < 30
    assert result.returncode == 0
    assert (len(result.stdout), len(result.stderr)) == (size, size)
    assert set(result.stdout) == {"o"} and set(result.stderr) == {"e"}


def test_a_command_past_its_timeout_is_abandoned_quickly(ssh):
    ssh.run(["true"])
    started = time.monotonic()
    with pytest.raises(TransportError, match=r"sleep did not finish within 1 s"):
        ssh.run(["sleep", "30"], timeout=1)
    assert time.monotonic() - started < 5
    # The connection itself is fine and is kept.
    assert ssh.run(["echo", "still here"]).stdout == "still here\n"
    assert ssh.connections_opened == 1


@pytest.mark.parametrize("wrap", [lambda argv: argv, lambda argv: ["sh", "-c", " ".join(argv) + "; echo done"]],
                         ids=["the-program", "a-shell-and-its-child"])
def test_a_command_past_its_timeout_is_ended_on_the_remote_side_too(ssh, wrap):
    # Seen with a hanging squeue: abandoned, it lived on, re-parented to init.
    duration = f"600.{secrets.randbelow(10**6):06d}"  # marks this test's sleep
    try:
        with pytest.raises(TransportError, match="did not finish within 1 s"):
            ssh.run(wrap(["sleep", duration]), timeout=1)
        assert _eventually(lambda: not processes_with_argument(duration), limit=10)
    finally:
        for pid in processes_with_argument(duration):
            os.kill(pid, 9)


def test_a_command_within_its_timeout_is_not_cut_short(ssh):
    ssh.run(["true"])  # connected: the timeout is the command's own
    result = ssh.run(["sh", "-c", "sleep 1.5; echo finished"], timeout=3)
    assert (result.returncode, result.stdout) == (0, "finished\n")


# ------------------------------------------------------------------ host keys and authentication


def test_an_unknown_host_key_is_refused(sshd_server, tmp_path):  # noqa: F811
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(TransportError, match=r"host key of \[127\.0\.0\.1\]:\d+ .* is not in .*refusing"):
        transport_with(sshd_server, known_hosts=empty).run(["true"])
    assert empty.read_text() == ""  # never learned


def test_a_changed_host_key_is_refused(sshd_server, tmp_path):  # noqa: F811
    other = " ".join(generate_key(tmp_path / "other_host_key").split()[:2])
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{sshd_server.port} {other}\n")
    with pytest.raises(TransportError, match=r"host key of 127\.0\.0\.1:\d+ has CHANGED"):
        transport_with(sshd_server, known_hosts=known_hosts).run(["true"])


def test_a_key_the_server_does_not_know_is_refused(sshd_server, tmp_path):  # noqa: F811
    generate_key(tmp_path / "stranger")
    with pytest.raises(TransportError, match=r"authentication .* failed.*authorized_keys"):
        transport_with(sshd_server, key_filename=tmp_path / "stranger").run(["true"])


def test_a_missing_known_hosts_file_is_reported(sshd_server, tmp_path):  # noqa: F811
    with pytest.raises(TransportError, match=r"cannot read the known_hosts file"):
        transport_with(sshd_server, known_hosts=tmp_path / "absent").run(["true"])


def test_a_closed_port_is_reported(sshd_server, tmp_path):  # noqa: F811
    with pytest.raises(TransportError, match=r"cannot connect to 127\.0\.0\.1:\d+"):
        transport_with(sshd_server, port=free_port(), connect_timeout=2).run(["true"])


# ------------------------------------------------------------------ one connection, reconnects, forks


def test_many_commands_from_many_threads_share_one_connection(sshd_server, ssh):  # noqa: F811
    logins_before = sshd_server.logins()
    for i in range(5):
        assert ssh.run(["echo", str(i)]).stdout == f"{i}\n"
    # Fewer threads than OpenSSH's default MaxSessions (10 channels at once).
    with ThreadPoolExecutor(max_workers=8) as pool:
        outputs = list(pool.map(lambda i: ssh.run(["echo", str(i)]).stdout, range(16)))
    assert outputs == [f"{i}\n" for i in range(16)]
    assert ssh.connections_opened == 1
    assert _eventually(lambda: sshd_server.logins() - logins_before == 1)


def test_a_dropped_connection_is_replaced_on_the_next_call(sshd_server, ssh):  # noqa: F811
    from prometheus_client import REGISTRY

    def counted():
        return [REGISTRY.get_sample_value(name) for name in
                ("qcos_ssh_connections_opened_total", "qcos_ssh_reconnects_total")]

    before = counted()
    ssh.run(["true"])
    _drop_sessions(sshd_server)
    assert ssh.run(["echo", "back"]).stdout == "back\n"
    assert ssh.connections_opened == 2
    assert [after - earlier for earlier, after in zip(before, counted())] == [2, 1]


def test_a_connection_lost_mid_command_is_an_error_not_a_second_run(sshd_server, ssh, tmp_path):  # noqa: F811
    runs = tmp_path / "runs"
    outcome: list[BaseException | object] = []

    def run() -> None:
        try:
            outcome.append(ssh.run(["sh", "-c", f"echo x >> {runs}; sleep 5"], timeout=30))
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    assert _eventually(lambda: runs.exists())
    _drop_sessions(sshd_server)
    worker.join(15)

    assert isinstance(outcome[0], TransportError) and "lost the SSH connection" in str(outcome[0])
    assert runs.read_text() == "x\n"  # sent once, never retried


def test_a_forked_child_opens_its_own_connection_and_leaves_the_parents_alone(sshd_server, ssh):  # noqa: F811
    assert ssh.run(["echo", "parent"]).stdout == "parent\n"
    logins_before = sshd_server.logins()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report through the pipe, never return into pytest
        code = 1
        try:
            os.close(read_end)
            result = ssh.run(["echo", "child"])
            report = f"{result.stdout.strip()} {ssh.connections_opened}"
            os.write(write_end, report.encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        report = pipe.read()
    _, status = os.waitpid(pid, 0)

    assert os.waitstatus_to_exitcode(status) == 0
    assert report == "child 1"
    assert ssh.run(["echo", "parent again"]).stdout == "parent again\n"
    assert ssh.connections_opened == 1
    assert _eventually(lambda: sshd_server.logins() - logins_before == 1)  # the child's only


# ------------------------------------------------------------------ files over SFTP


def test_upload_dir_copies_a_tree_atomically_with_its_modes(ssh, tmp_path):
    local = tmp_path / "local"
    (local / "sub").mkdir(parents=True)
    (local / SCRIPT_FILE).write_text("#!/bin/bash\necho ok\n")
    (local / SCRIPT_FILE).chmod(0o750)
    (local / "params.json").write_text('{"shots": 10}')
    (local / "sub" / "deep.txt").write_text("deep")
    remote = tmp_path / "remote" / "root" / "job-1"

    ssh.upload_dir(local, remote)

    assert (remote / SCRIPT_FILE).read_text() == "#!/bin/bash\necho ok\n"
    assert stat.S_IMODE((remote / SCRIPT_FILE).stat().st_mode) == 0o750
    assert (remote / "sub" / "deep.txt").read_text() == "deep"
    assert stat.S_IMODE(remote.stat().st_mode) == 0o700
    assert not Path(f"{remote}.partial").exists()

    # Uploading again replaces the remote copy entirely.
    (local / "params.json").unlink()
    ssh.upload_dir(local, remote)
    assert not (remote / "params.json").exists()
    assert (remote / SCRIPT_FILE).exists()


def test_read_texts_reads_files_in_one_session_or_says_none(ssh, tmp_path, mocker):
    (tmp_path / "result.json").write_text('{"counts": {"00": 5}}')
    (tmp_path / "bytes.log").write_bytes(b"ok \xff\n")
    huge = tmp_path / "huge.log"
    with huge.open("wb") as handle:
        handle.truncate(MAX_READ_BYTES + 1)  # a runaway job's file: not loaded
    sessions = mocker.spy(ssh, "_sftp_session")
    assert ssh.read_texts([tmp_path / "result.json", str(tmp_path / "bytes.log"), tmp_path / "missing.json",
                           tmp_path / "no-dir" / "result.json", huge, tmp_path / "result.json"]) == [
        '{"counts": {"00": 5}}', "ok \ufffd\n", None, None, None, '{"counts": {"00": 5}}']
    assert sessions.call_count == 1


def test_remove_tree_deletes_without_following_links(ssh, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    tree = tmp_path / "tree"
    (tree / "a" / "b").mkdir(parents=True)
    (tree / "a" / "b" / "f.txt").write_text("x")
    (tree / "link").symlink_to(outside)

    ssh.remove_tree(tree)
    ssh.remove_tree(tree)  # already gone: fine

    assert not tree.exists()
    assert (outside / "keep.txt").read_text() == "keep"
    with pytest.raises(ValueError):
        ssh.remove_tree("relative/path")
    with pytest.raises(ValueError):
        ssh.remove_tree("/")


# ------------------------------------------------------------------ Slurm through SSH


@pytest.mark.slurm
def test_slurm_jobs_submitted_polled_read_and_cancelled_over_ssh(slurm_cluster, ssh, tmp_path):  # noqa: F811
    executor = SlurmExecutor(ssh)
    assert executor.ping() is True

    local = tmp_path / "staged" / "job"
    local.mkdir(parents=True)
    (local / SCRIPT_FILE).write_text("#!/bin/bash\necho ok > result.txt\necho done\n")
    remote = tmp_path / "cluster" / "work" / "job"
    ssh.upload_dir(local, remote)

    job_id = executor.submit(remote, job_name=_job_name())
    done = wait_for_observation(executor, job_id, lambda o: status_for_slurm_state(o.state)[0].is_final)
    assert base_state(done.state) == "COMPLETED"
    assert ssh.read_texts([remote / "result.txt", remote / STDOUT_FILE]) == ["ok\n", "done\n"]

    (local / SCRIPT_FILE).write_text("#!/bin/bash\nsleep 60\n")
    sleeper = remote.with_name("sleeper")
    ssh.upload_dir(local, sleeper)
    sleeper_id = executor.submit(sleeper, job_name=_job_name())
    wait_for_observation(executor, sleeper_id, lambda o: o.source == "squeue")
    executor.cancel([sleeper_id])
    cancelled = wait_for_observation(executor, sleeper_id, lambda o: status_for_slurm_state(o.state)[0].is_final)
    assert base_state(cancelled.state) == "CANCELLED"
    assert ssh.connections_opened == 1


# ------------------------------------------------------------------ helpers


def _eventually(check, limit: float = 5.0) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def _drop_sessions(server: SSHServer) -> None:
    """Kill the server side of every open connection, as a restarted login node would."""
    sessions = server.session_pids()
    assert sessions, "no open SSH session to drop"
    for pid in sessions:
        os.kill(pid, 15)
    assert _eventually(lambda: not set(sessions) & set(server.session_pids()))


def _job_name() -> str:
    return "qcos-ssh-" + secrets.token_hex(4)


