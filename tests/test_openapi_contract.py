"""The OpenAPI document against the live gateway: Schemathesis generates requests
from /openapi.json and checks every answer (no 5xx, status codes, content
types, headers and bodies as documented); /docs renders it in a real browser;
a client generated from it by openapi-python-client runs a circuit; the
README's curl commands post a .qasm file."""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import requests

from tests import browser
from tests.components import missing
from tests.conftest import BELL
from tests.stack import BIN, REPO_ROOT, gateway_stack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def live_gateway(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("openapi")
    # The fuzzer sends hundreds of requests from one address: lift the limit
    # for callers without a key, which would otherwise answer 429 to the rest.
    env = {"QCOS_ANON_RATE_LIMIT": "100000/minute"}
    with gateway_stack(tmp, database_url=f"sqlite:///{tmp / 'qcos.db'}", env=env) as stack:
        created = subprocess.run(
            [str(BIN / "qcos"), "users", "create", "--email", "fuzz@example.org", "--tier", "enterprise"],
            env=stack.env, cwd=REPO_ROOT, capture_output=True, text=True, check=True,
        ).stdout
        stack.api_key = re.search(r"api_key: (\S+)", created).group(1)
        yield stack


def fresh_key(stack) -> str:
    """Another key of the fuzz user: its own rate-limit budget, untouched by the fuzzer's requests."""
    issued = subprocess.run([str(BIN / "qcos"), "keys", "issue", "fuzz@example.org"], env=stack.env, cwd=REPO_ROOT,
                            capture_output=True, text=True, check=True).stdout
    return re.search(r"api_key: (\S+)", issued).group(1)


#: Every check Schemathesis has, except ``positive_data_acceptance``: a
#: schema-valid body may still hold an invalid circuit (400 CIRCUIT_INVALID),
#: and a schema-valid job_id names no job (404), which the schema cannot say.
EXCLUDED_CHECKS = "positive_data_acceptance"


def test_every_answer_matches_the_document(live_gateway, tmp_path):
    run = subprocess.run(
        [str(BIN / "schemathesis"), "run", f"{live_gateway.base_url}/openapi.json",
         "--checks", "all", "--exclude-checks", EXCLUDED_CHECKS,
         "--header", f"X-API-Key: {live_gateway.api_key}",
         "--max-examples", "25", "--phases", "examples,coverage,fuzzing", "--workers", "1",
         "--generation-database", "none", "--request-timeout", "30", "--seed", "20261129",
         "--no-color", "--report", "junit", "--report-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]


def test_document_is_openapi_3_and_lists_every_endpoint(live_gateway):
    document = requests.get(f"{live_gateway.base_url}/openapi.json", timeout=10).json()
    assert document["openapi"].startswith("3.")
    assert set(document["paths"]) == {"/", "/healthz", "/readyz", "/execute", "/status/{job_id}", "/results/{job_id}", "/pricing",
                                      "/user/me", "/user/usage", "/jobs", "/jobs/{job_id}", "/admin/queue",
                                      "/admin/cluster", "/admin/jobs/{job_id}/cancel", "/batches", "/batches/{batch_id}"}


def test_docs_page_and_its_assets_come_from_the_gateway(live_gateway):
    page = requests.get(f"{live_gateway.base_url}/docs", timeout=10)
    assert page.status_code == 200 and "swagger-ui" in page.text
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets and all(src.startswith("/") for src in assets)  # no CDN
    for src in assets:
        assert requests.get(live_gateway.base_url + src, timeout=10).status_code == 200


def test_docs_render_every_operation_in_a_browser(live_gateway, tmp_path):
    """Swagger UI, in headless Chromium that cannot resolve any other host, lists every operation."""
    document = requests.get(f"{live_gateway.base_url}/openapi.json", timeout=10).json()
    dom = browser.rendered_dom(f"{live_gateway.base_url}/docs")
    picture = browser.screenshot(f"{live_gateway.base_url}/docs", tmp_path / "docs.png")
    assert "Unable to render this definition" not in dom and "errors-wrapper" not in dom, picture
    assert "QCOS API" in dom and "OAS 3.1" in dom, picture
    for item in document["paths"].values():
        for operation in item.values():
            assert f'id="operations-{operation["tags"][0]}-{operation["operationId"]}"' in dom, (
                operation["operationId"], picture)


@pytest.fixture(scope="module")
def generated_client(live_gateway, tmp_path_factory):
    """The package openapi-python-client generates from the live /openapi.json, imported."""
    out = tmp_path_factory.mktemp("generated")
    done = subprocess.run(
        [str(BIN / "openapi-python-client"), "generate", "--url", f"{live_gateway.base_url}/openapi.json",
         "--output-path", str(out / "qcos_generated_client"), "--meta", "none", "--overwrite"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"},
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module("qcos_generated_client")
    finally:
        sys.path.remove(str(out))


def test_a_generated_client_runs_the_bell_circuit(live_gateway, generated_client):
    import httpx
    from qcos_generated_client.api.account import get_me
    from qcos_generated_client.api.jobs import execute, get_results, get_status
    from qcos_generated_client.models import (
        DryRunResponse,
        ErrorCode,
        ErrorResponse,
        ExecuteRequest,
        ExecuteResponse,
        ResultsCompleted,
    )

    client = generated_client.AuthenticatedClient(base_url=live_gateway.base_url, token=fresh_key(live_gateway),
                                                  timeout=httpx.Timeout(120))
    assert get_me.sync(client=client).tier == "enterprise"
    dry = execute.sync(client=client, body=ExecuteRequest(qasm=BELL, shots=500), dry_run=True)
    assert isinstance(dry, DryRunResponse) and dry.num_qubits == 2 and dry.shots == 500

    created = execute.sync_detailed(client=client, body=ExecuteRequest(qasm=BELL, shots=500))
    assert created.status_code == 201 and isinstance(created.parsed, ExecuteResponse)
    assert created.headers["Location"] == f"/status/{created.parsed.job_id}"
    for _ in range(6):  # each wait is at most 60 s; the job takes seconds
        results = get_results.sync(client=client, job_id=created.parsed.job_id, wait=True, timeout=60)
        if isinstance(results, ResultsCompleted):
            break
    assert isinstance(results, ResultsCompleted), results
    counts = results.result.counts.additional_properties
    assert sum(counts.values()) == 500 and set(counts) <= {"00", "11"}

    unknown = get_status.sync(client=client, job_id="no-such-job")
    assert isinstance(unknown, ErrorResponse) and unknown.error_code == ErrorCode.JOB_NOT_FOUND


def _curl(*args: str) -> dict:
    curl = shutil.which("curl")
    if curl is None:
        missing("curl", "install Debian's curl package")
    done = subprocess.run([curl, "--silent", "--show-error", *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_readme_curl_commands_post_a_qasm_file(live_gateway, tmp_path):
    qasm = tmp_path / "bell.qasm"
    qasm.write_text(BELL.replace("; ", ";\n") + "\n")
    url, key = live_gateway.base_url, f"X-API-Key: {fresh_key(live_gateway)}"
    as_body = _curl("--data-binary", f"@{qasm}", "-H", "Content-Type: text/plain", "-H", key,
                    f"{url}/execute?shots=1024")
    as_form = _curl("-F", f"qasm=@{qasm}", "-F", "shots=1024", "-H", key, f"{url}/execute")
    assert as_body["status"] == as_form["status"] == "queued"
    for job_id in (as_body["job_id"], as_form["job_id"]):
        results = _curl("-H", key, f"{url}/results/{job_id}?wait=true&timeout=120")
        assert results["status"] == "completed" and sum(results["result"]["counts"].values()) == 1024
    # Without the Content-Type, curl sends a form; the answer says what to do.
    mislabelled = _curl("--data-binary", f"@{qasm}", "-H", key, f"{url}/execute")
    assert mislabelled["error_code"] == "INVALID_REQUEST" and "Content-Type: text/plain" in mislabelled["detail"]
