"""Every example of the API reference, answered as documented.

The examples are read from the reference itself (``shared/seed``), in the
order they appear, so a change there shows up here.
"""

from __future__ import annotations

import json

from tests.conftest import REPO_ROOT, make_user
from tests.helpers import drive_until_final

REFERENCE = REPO_ROOT.parent / "shared" / "seed" / "qcos-api-reference.txt"


def _examples() -> list:
    text = REFERENCE.read_text()
    decoder, position, found = json.JSONDecoder(), 0, []
    while (start := text.find("{", position)) >= 0:
        try:
            value, position = decoder.raw_decode(text, start)
            found.append(value)
        except json.JSONDecodeError:
            position = start + 1
    return found


EXAMPLES = _examples() if REFERENCE.exists() else []
(HEALTH, EXECUTE_BODY, EXECUTE_ANSWER, CURL_BODY, STATUS, RESULTS_COMPLETED, RESULTS_PENDING, USER_ME, USAGE,
 PRICING, ERROR) = EXAMPLES if len(EXAMPLES) == 11 else [None] * 11


def _kind(value):
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__


def assert_same_shape(ours, documented, *, path="$", open_objects=()):
    """Same keys (``open_objects`` may add keys) and value kinds, recursively; null matches anything."""
    if documented is None or ours is None:
        return
    assert _kind(ours) == _kind(documented), f"{path}: {ours!r} vs documented {documented!r}"
    if isinstance(documented, dict):
        if path in open_objects or path.endswith(".counts"):
            assert set(documented) - {"00", "11"} <= set(ours), path
        else:
            assert set(ours) == set(documented), f"{path}: keys {sorted(ours)} vs {sorted(documented)}"
        for key in documented:
            if key in ours:
                assert_same_shape(ours[key], documented[key], path=f"{path}.{key}", open_objects=open_objects)
    elif isinstance(documented, list) and documented and ours:
        for item in ours:
            assert_same_shape(item, documented[0], path=f"{path}[]", open_objects=open_objects)


def test_the_reference_has_the_examples_this_test_expects():
    assert len(EXAMPLES) == 11, "the API reference's examples changed; update this test"
    assert list(HEALTH) == ["status", "version", "queue_connected"] and list(ERROR) == ["detail", "error_code",
                                                                                        "request_id"]


def test_every_example_is_answered_as_documented(client, runtime):
    key = make_user(runtime, email="demo@example.com", tier="pro")[1]
    headers = {"X-API-Key": key, "Content-Type": "application/json"}

    # The example is a healthy gateway's answer: its poller has reached the scheduler.
    from gateway import estimates
    from gateway.poller import service_cycle

    service_cycle(runtime)
    estimates._cache.clear()
    assert_same_shape(client.get("/").get_json(), HEALTH)

    created = client.post("/execute", data=json.dumps(EXECUTE_BODY), headers=headers)
    assert created.status_code == 201 and created.get_json()["job_id"] == EXECUTE_BODY["job_id"]
    assert_same_shape(created.get_json(), EXECUTE_ANSWER)
    assert created.get_json()["status"] == "queued"

    # The curl example, with the Bearer form of the key.
    curl = client.post("/execute", data=json.dumps(CURL_BODY),
                       headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    assert curl.status_code == 201
    job_id = curl.get_json()["job_id"]
    assert client.get(f"/results/{job_id}", headers=headers).get_json() == {
        **RESULTS_PENDING, "job_id": job_id}

    drive_until_final(runtime, job_id)
    status = client.get(f"/status/{job_id}", headers=headers).get_json()
    assert_same_shape(status, STATUS, open_objects=("$.result",))
    assert set(status["result"]["counts"]) <= {"00", "11"}
    results = client.get(f"/results/{job_id}", headers=headers).get_json()
    assert_same_shape(results, RESULTS_COMPLETED)
    assert set(results["result"]) == {"counts"}

    assert_same_shape(client.get("/user/me", headers=headers).get_json(), USER_ME)
    assert_same_shape(client.get("/user/usage", headers=headers).get_json(), USAGE)
    assert client.get("/pricing").get_json() == PRICING
    assert_same_shape(client.get("/status/does-not-exist", headers=headers).get_json(), ERROR)
