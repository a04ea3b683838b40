"""``qcos-client`` against the in-memory gateway: what it submits, prints
and exits with. test_live_cli.py runs the installed command on a live one."""

from __future__ import annotations

import json

import pytest

from qcos_sdk import Client, cli
from tests.fake_gateway import FakeGateway
from tests.support import BELL, GHZ3


@pytest.fixture
def fake(monkeypatch) -> FakeGateway:
    fake = FakeGateway(counts_for=lambda qasm, shots: {"111" if "q[3]" in qasm else "11": shots})

    def client(url, api_key, **kwargs):
        made = Client(url or "http://gateway.test", api_key or "k", transport=fake.transport(), **kwargs)
        made._sleep = lambda seconds: None
        return made

    monkeypatch.setattr(cli, "Client", client)
    return fake


@pytest.fixture
def circuits(tmp_path):
    folder = tmp_path / "circuits"
    folder.mkdir()
    (folder / "a_bell.qasm").write_text(BELL)
    (folder / "b_ghz.qasm").write_text(GHZ3)
    (folder / "notes.txt").write_text("not a circuit")
    return folder


def test_one_file_is_one_job_printed_as_a_table(fake, circuits, capsys):
    assert cli.main(["submit", str(circuits / "a_bell.qasm"), "--shots", "10"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{circuits / 'a_bell.qasm'}  job ") and out[0].endswith("completed, 10 shots")
    assert out[1].split() == ["outcome", "count", "probability"] and out[2].split() == ["11", "10", "1.0000"]
    assert fake.paths("POST") == ["/execute"]


def test_a_directory_is_a_batch_of_its_qasm_files_in_order(fake, circuits, capsys):
    assert cli.main(["submit", str(circuits), "--json", "--no-progress"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["file"] for row in rows] == [str(circuits / "a_bell.qasm"), str(circuits / "b_ghz.qasm")]
    assert [row["counts"] for row in rows] == [{"11": 1024}, {"111": 1024}]
    assert [row["status"] for row in rows] == ["completed", "completed"]
    assert fake.paths("POST") == ["/batches"]


def test_no_wait_prints_the_job_ids(fake, circuits, capsys):
    assert cli.main(["submit", str(circuits / "a_bell.qasm"), str(circuits / "b_ghz.qasm"), "--no-wait",
                     "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["job_id"] for row in rows] == list(fake.jobs)
    assert rows[0]["batch_id"].startswith("batch_")
    assert fake.paths("GET") == []


def test_an_invalid_circuit_is_one_line_naming_its_file(fake, circuits, capsys):
    (circuits / "c_broken.qasm").write_text("h q[0];")
    assert cli.main(["submit", str(circuits)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (f"qcos-client: CIRCUIT_INVALID: {circuits / 'c_broken.qasm'}: Invalid circuit: "
                            "line 1, column 1: expected 'OPENQASM 2.0;'\n")


def test_a_failed_job_is_shown_and_the_exit_status_says_so(fake, circuits, capsys):
    fake.failing[GHZ3] = "simulator crashed"
    assert cli.main(["submit", str(circuits), "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "b_ghz.qasm  job " in out and "failed: simulator crashed" in out
    assert "a_bell.qasm  job " in out and "completed" in out


@pytest.mark.parametrize("argv, message", [
    (["submit", "missing.qasm"], "missing.qasm: no such file or directory"),
    (["submit", "{dir}", "--job-id", "x"], "--job-id needs exactly one file"),
])
def test_bad_input_is_one_line_and_exit_1(fake, circuits, capsys, argv, message):
    argv = [arg.replace("{dir}", str(circuits)) for arg in argv]
    assert cli.main(argv) == 1
    assert capsys.readouterr().err == f"qcos-client: {message}\n"


def test_a_directory_without_circuits_is_refused(fake, tmp_path, capsys):
    assert cli.main(["submit", str(tmp_path)]) == 1
    assert "no .qasm files" in capsys.readouterr().err


def test_without_a_gateway_url_it_says_what_to_set(monkeypatch, capsys):
    monkeypatch.delenv("QCOS_URL", raising=False)
    assert cli.main(["health"]) == 1
    assert capsys.readouterr().err == "qcos-client: no QCOS gateway URL: set QCOS_URL (or pass base_url=, or --url)\n"


def test_a_wrong_command_line_exits_2(capsys):
    with pytest.raises(SystemExit) as caught:
        cli.main(["submit"])
    assert caught.value.code == 2
