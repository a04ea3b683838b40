"""The OpenAPI document against the live gateway: Schemathesis generates requests
from /openapi.json and checks every answer (no 5xx, status codes, content
types and bodies as documented)."""

from __future__ import annotations

import re
import subprocess

import pytest
import requests

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
                                      "/admin/cluster", "/admin/jobs/{job_id}/cancel"}


def test_docs_page_and_its_assets_come_from_the_gateway(live_gateway):
    page = requests.get(f"{live_gateway.base_url}/docs", timeout=10)
    assert page.status_code == 200 and "swagger-ui" in page.text
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets and all(src.startswith("/") for src in assets)  # no CDN
    for src in assets:
        assert requests.get(live_gateway.base_url + src, timeout=10).status_code == 200
