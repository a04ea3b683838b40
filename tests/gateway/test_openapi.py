"""The OpenAPI document as a client generator reads it: operation names, response
headers, the dry-run answer, error codes, servers (in-process; the live
gateway, the browser and a generated client: tests/test_openapi_contract.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway.config import ConfigError, Settings
from tests.conftest import BELL

METHODS = ("get", "put", "post", "delete", "patch")

#: The name of every endpoint of the API reference and of the admin API.
OPERATION_IDS = {
    ("get", "/"): "health",
    ("post", "/execute"): "execute",
    ("get", "/status/{job_id}"): "getStatus",
    ("get", "/results/{job_id}"): "getResults",
    ("get", "/jobs"): "listJobs",
    ("delete", "/jobs/{job_id}"): "cancelJob",
    ("get", "/user/me"): "getMe",
    ("get", "/user/usage"): "getUsage",
    ("get", "/pricing"): "getPricing",
    ("get", "/admin/queue"): "getAdminQueue",
    ("get", "/admin/cluster"): "getAdminCluster",
    ("post", "/admin/jobs/{job_id}/cancel"): "cancelJobAsAdmin",
    ("post", "/batches"): "createBatch",
    ("get", "/batches/{batch_id}"): "getBatch",
    ("get", "/healthz"): "liveness",
    ("get", "/readyz"): "readiness",
}


@pytest.fixture
def document(client):
    return client.get("/openapi.json").get_json()


def _operations(document):
    for path, item in document["paths"].items():
        for method in METHODS:
            if method in item:
                yield method, path, item[method]


def test_every_operation_has_a_unique_lower_camel_case_name(document):
    names = {(method, path): operation["operationId"] for method, path, operation in _operations(document)}
    assert OPERATION_IDS.items() <= names.items()
    # Endpoints added later (batches...) are named too: no spectree default such as get__status_{job_id}.
    assert all(re.fullmatch(r"[a-z][a-zA-Z0-9]*", name) for name in names.values()), names
    assert len(set(names.values())) == len(names)


def test_a_documented_view_cannot_leave_out_its_operation_id():
    from gateway.openapi import api_spec, responses

    with pytest.raises(TypeError, match="operation_id"):
        api_spec.validate(resp=responses({200: None}))
    with pytest.raises(ValueError, match="lowerCamelCase"):
        api_spec.validate(operation_id="get_batch", resp=responses({200: None}))
    with pytest.raises(ValueError, match="RESPONSE_HEADERS"):
        responses({201: None}, headers={201: ["X-Undocumented"]})


def test_every_answer_documents_its_headers(document):
    for method, path, operation in _operations(document):
        for status, response in operation["responses"].items():
            headers = response["headers"]
            where = f"{method} {path} {status}"
            assert headers["X-Request-ID"]["required"] is True, where
            assert {"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} <= set(headers), where
            assert ("Retry-After" in headers) == (status in ("429", "503")), where
            assert ("WWW-Authenticate" in headers) == (status == "401"), where
            assert ("Location" in headers) == (status == "201"), where
    assert document["paths"]["/execute"]["post"]["responses"]["201"]["headers"]["Location"]["required"] is True


def test_the_documented_headers_are_sent(client, api_key):
    created = client.post("/execute", json={"qasm": BELL, "shots": 10}, headers={"X-API-Key": api_key})
    assert created.status_code == 201
    assert created.headers["Location"] == f"/status/{created.get_json()['job_id']}"
    assert re.fullmatch(r"req_[0-9a-f]{16}", created.headers["X-Request-ID"])
    assert int(created.headers["X-RateLimit-Remaining"]) < int(created.headers["X-RateLimit-Limit"])
    refused = client.get("/user/me")
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Bearer")


def test_the_dry_run_answer_has_its_own_schema(document, client, api_key):
    ok = document["paths"]["/execute"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/ExecuteOkResponse"}
    schemas = document["components"]["schemas"]
    choices = [choice["$ref"].rsplit("/", 1)[1] for choice in schemas["ExecuteOkResponse"]["anyOf"]]
    # The dry run first: a client trying the choices in order must not read it as a submission.
    assert choices == ["DryRunResponse", "ExecuteResponse"]
    dry_run = schemas["DryRunResponse"]
    answer = client.post("/execute?dry_run=true", json={"qasm": BELL}, headers={"X-API-Key": api_key}).get_json()
    assert set(answer) == set(dry_run["properties"]) and set(dry_run["required"]) <= set(answer)
    assert "status" not in answer and "status" in schemas["ExecuteResponse"]["required"]
    assert set(answer["resources"]) == set(schemas["DryRunResources"]["properties"])


def _codes_the_gateway_answers() -> set[str]:
    """Every ``error_code`` errors.py can put in an answer: its exception classes
    (and their subclasses anywhere), its status table and its literals."""
    import gateway.errors as errors
    from gateway import create_app  # noqa: F401 - imports every module that may define an ApiError

    classes, pending = set(), [errors.ApiError]
    while pending:
        cls = pending.pop()
        classes.add(cls)
        pending.extend(cls.__subclasses__())
    literals = re.findall(r'"([A-Z]+(?:_[A-Z]+)+)"', Path(errors.__file__).read_text())
    return {cls.error_code for cls in classes} | set(errors._HTTP_CODES.values()) | set(literals)


def test_error_code_is_an_enum_of_every_code(document):
    from gateway.schemas import ErrorCode

    enum = document["components"]["schemas"]["ErrorCode"]
    assert document["components"]["schemas"]["ErrorResponse"]["properties"]["error_code"] == {
        "$ref": "#/components/schemas/ErrorCode"}
    assert set(enum["enum"]) == {code.value for code in ErrorCode}
    assert _codes_the_gateway_answers() <= set(enum["enum"])
    assert {"JOB_NOT_FOUND", "BATCH_NOT_FOUND", "RATE_LIMITED", "INTERNAL_ERROR"} <= set(enum["enum"])


def test_health_documents_degraded_as_an_optional_list_of_sources(document):
    health = document["components"]["schemas"]["HealthResponse"]
    assert set(health["required"]) == {"status", "version", "queue_connected"}
    degraded = health["properties"]["degraded"]
    # Absent when healthy, never null: a generated client gets a plain optional list.
    assert degraded["type"] == "array" and degraded["minItems"] == 1 and "default" not in degraded
    assert degraded["items"]["enum"] == ["scheduler", "accounting", "rate_limiter"]


def test_circuit_bodies_are_documented(document):
    execute = document["paths"]["/execute"]["post"]
    content = execute["requestBody"]["content"]
    assert list(content) == ["application/json", "multipart/form-data", "text/plain", "application/vnd.openqasm",
                             "application/x-www-form-urlencoded"]
    assert content["text/plain"]["schema"]["type"] == "string"
    form = document["components"]["schemas"]["ExecuteForm"]
    assert form["properties"]["qasm"]["format"] == "binary" and form["required"] == ["qasm"]
    assert {parameter["name"] for parameter in execute["parameters"]} == {"dry_run", "shots", "job_id"}


def test_descriptions_are_markdown_not_restructured_text(document):
    execute = document["paths"]["/execute"]["post"]
    assert "``" not in execute["description"] and ":class:" not in execute["description"]
    assert "`" not in execute["summary"]
    assert "`text/plain`" in execute["description"]


def test_servers_is_the_public_url_when_set(settings, document):
    from gateway import create_app

    assert "servers" not in document  # clients use the address they fetched the document from
    app = create_app({"QCOS_SETTINGS": settings.model_copy(update={"public_url": "https://qcos.example.org/api"}), "TESTING": True})
    assert app.test_client().get("/openapi.json").get_json()["servers"] == [
        {"url": "https://qcos.example.org/api", "description": "This QCOS gateway"}]


@pytest.mark.parametrize(("raw", "url"), [
    ("https://qcos.example.org/", "https://qcos.example.org"),
    ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
    (" https://hpc.example.org/qcos/ ", "https://hpc.example.org/qcos"),
    ("", ""),
])
def test_public_url_setting(raw, url):
    assert Settings.from_env({"QCOS_PUBLIC_URL": raw}).public_url == url


@pytest.mark.parametrize("raw", ["qcos.example.org", "ftp://qcos.example.org", "https://", "https://a.org/?x=1",
                                 "https://a.org/#top", "https://user@a.org", "https://a.org:99999",
                                 "https://a.org/x y", "javascript:alert(1)"])
def test_public_url_setting_refuses_what_is_not_an_http_address(raw):
    with pytest.raises(ConfigError, match="QCOS_PUBLIC_URL"):
        Settings.from_env({"QCOS_PUBLIC_URL": raw})


def test_docs_redirects_to_swagger_ui_served_by_the_gateway(client):
    assert client.get("/docs").status_code in (301, 308)
    page = client.get("/docs/")
    assert page.status_code == 200
    assert '"url": "/openapi.json"' in page.get_data(as_text=True)
    bundle = client.get("/docs/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and bundle.content_length > 500_000
