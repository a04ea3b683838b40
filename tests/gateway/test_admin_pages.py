"""The admin page through Flask's test client: sign-in, session cookie, CSRF, actions.
(tests/test_admin_browser.py drives it in a real browser.)"""

from __future__ import annotations

import re

import pytest

from gateway.accounts import find_user, issue_key, revoke_key
from gateway.models import ApiKey
from tests.conftest import BELL, make_user

_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def _token(page) -> str:
    return _TOKEN.search(page.get_data(as_text=True)).group(1)


@pytest.fixture
def admin(runtime):
    """(user_id, admin key) of an administrator."""
    user_id, _ = make_user(runtime, email="root@example.org")
    with runtime.db.transaction() as session:
        return user_id, issue_key(session, find_user(session, user_id), admin=True)


def _sign_in(client, key):
    form = client.get("/admin/login")
    return client.post("/admin/login", data={"api_key": key, "csrf_token": _token(form)})


def test_the_page_sends_strangers_to_the_sign_in_form(client):
    response = client.get("/admin")
    assert response.status_code == 303 and response.headers["Location"].endswith("/admin/login")
    form = client.get("/admin/login")
    assert form.status_code == 200 and 'type="password"' in form.get_data(as_text=True)
    assert "default-src 'none'" in form.headers["Content-Security-Policy"]


def test_signing_in_needs_the_form_token(client, admin):
    response = client.post("/admin/login", data={"api_key": admin[1]})
    assert response.status_code == 400 and "expired" in response.get_data(as_text=True)
    assert client.get("/admin").status_code == 303


def test_only_admin_keys_sign_in(client, runtime, admin):
    _, user_key = make_user(runtime)
    refused = _sign_in(client, user_key)
    assert refused.status_code == 401 and "not a valid admin API key" in refused.get_data(as_text=True)
    assert _sign_in(client, "qcos_" + "x" * 43).status_code == 401
    assert client.get("/admin").status_code == 303


def test_the_session_cookie_is_locked_down_and_holds_no_key(client, admin):
    response = _sign_in(client, admin[1])
    assert response.status_code == 303 and response.headers["Location"].endswith("/admin/")
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("qcos_admin=")
    for attribute in ("Secure", "HttpOnly", "SameSite=Strict", "Path=/admin", "Expires="):
        assert attribute in cookie
    assert admin[1] not in cookie and admin[1][5:25] not in cookie
    page = client.get("/admin/")
    assert page.status_code == 200 and "root@example.org" in page.get_data(as_text=True)
    # The API answers no cookie: the JSON API stays key-only.
    assert "Set-Cookie" not in client.get("/healthz").headers


def test_revoking_the_key_ends_the_session(client, runtime, admin):
    _sign_in(client, admin[1])
    assert client.get("/admin/").status_code == 200
    with runtime.db.transaction() as session:
        key_id = session.query(ApiKey).filter_by(user_id=admin[0], is_admin=True).one().id
        revoke_key(session, key_id)
    assert client.get("/admin/").status_code == 303


def test_cancel_needs_the_token_and_cancels_any_users_job(client, runtime, admin):
    _, user_key = make_user(runtime)
    job_id = client.post("/execute", json={"qasm": BELL, "shots": 16, "job_id": "page-cancel"},
                         headers={"X-API-Key": user_key}).get_json()["job_id"]
    _sign_in(client, admin[1])
    page = client.get("/admin/")
    forged = client.post("/admin/actions/cancel", data={"job_id": job_id})
    assert forged.status_code == 400
    assert client.get(f"/status/{job_id}", headers={"X-API-Key": user_key}).get_json()["status"] != "failed"
    done = client.post("/admin/actions/cancel", data={"job_id": job_id, "csrf_token": _token(page)},
                       follow_redirects=True)
    assert done.status_code == 200 and f"Job {job_id}: failed (cancelled by an administrator)" in done.get_data(
        as_text=True)
    status = client.get(f"/status/{job_id}", headers={"X-API-Key": user_key}).get_json()
    assert (status["status"], status["error"]) == ("failed", "cancelled by an administrator")
    unknown = client.post("/admin/actions/cancel", data={"job_id": "no-such-job", "csrf_token": _token(page)},
                          follow_redirects=True)
    assert "No job no-such-job." in unknown.get_data(as_text=True)


def test_disabling_a_user_refuses_their_keys_and_enabling_restores_them(client, runtime, admin):
    user_id, user_key = make_user(runtime, email="ada@example.org")
    _sign_in(client, admin[1])
    page = client.get("/admin/")
    assert "ada@example.org" in page.get_data(as_text=True)
    done = client.post("/admin/actions/disable-user", data={"user_id": user_id, "csrf_token": _token(page)},
                       follow_redirects=True)
    assert "ada@example.org is disabled." in done.get_data(as_text=True)
    assert client.get("/user/me", headers={"X-API-Key": user_key}).get_json()["error_code"] == "AUTH_INVALID"
    client.post("/admin/actions/enable-user", data={"user_id": user_id, "csrf_token": _token(page)})
    assert client.get("/user/me", headers={"X-API-Key": user_key}).status_code == 200


def test_an_admin_cannot_disable_themselves_here(client, admin):
    _sign_in(client, admin[1])
    page = client.get("/admin/")
    done = client.post("/admin/actions/disable-user", data={"user_id": admin[0], "csrf_token": _token(page)},
                       follow_redirects=True)
    assert "You cannot disable your own account here." in done.get_data(as_text=True)
    assert client.get("/admin/").status_code == 200


def test_signing_out_forgets_the_session(client, admin):
    _sign_in(client, admin[1])
    page = client.get("/admin/")
    client.post("/admin/logout", data={"csrf_token": _token(page)})
    assert client.get("/admin/").status_code == 303


def test_users_usage_on_the_page_matches_user_usage(client, runtime, admin):
    from datetime import timedelta

    from gateway.models import Job, utcnow

    user_id, user_key = make_user(runtime, email="grace@example.org")
    now = utcnow()
    with runtime.db.transaction() as session:
        for index, seconds in enumerate((1.5, 7200.0)):
            session.add(Job(id=f"used-{index}", user_id=user_id, status="completed", qasm=BELL, shots=100 + index,
                            num_qubits=3, request_hash="0" * 64, executor="local", cluster_profile="dev",
                            work_dir="/tmp/x", created_at=now - timedelta(minutes=5), completed_at=now,
                            execution_time_seconds=seconds))
    usage = client.get("/user/usage", headers={"X-API-Key": user_key}).get_json()
    _sign_in(client, admin[1])
    html = client.get("/admin/").get_data(as_text=True)
    row = html[html.index("grace@example.org"):]
    row = row[:row.index("</tr>")]
    cells = re.findall(r"<td>([^<]*)</td>", row)
    assert cells[-3:] == [str(usage["jobs_executed"]), str(usage["total_shots"]),
                          f"{usage['total_qubits_hours']:.6f}"]


def test_without_a_session_key_only_the_admin_page_is_unavailable(settings, tmp_path):
    from gateway import create_app

    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    client = create_app({"QCOS_SETTINGS": settings.model_copy(update={"state_dir": blocker}), "TESTING": True}).test_client()
    page = client.get("/admin/login")
    assert page.status_code == 503 and "QCOS_SECRET_KEY" in page.get_data(as_text=True)
    assert client.get("/healthz").status_code == 200


def test_a_configured_secret_key_is_used_and_nothing_is_written(settings):
    from gateway import create_app

    app = create_app({"QCOS_SETTINGS": settings.model_copy(update={"secret_key": "k" * 64}), "TESTING": True})
    assert app.secret_key == "k" * 64 and not (settings.state_dir / "secret_key").exists()


def test_the_generated_key_is_private_and_shared_by_every_worker(settings):
    from gateway import create_app

    first = create_app({"QCOS_SETTINGS": settings}).secret_key
    second = create_app({"QCOS_SETTINGS": settings}).secret_key
    path = settings.state_dir / "secret_key"
    assert first == second and len(first) == 64 and (path.stat().st_mode & 0o777) == 0o600


def test_the_summary_counts_jobs_and_the_oldest_waiting_for_a_batch_job(client, runtime, admin):
    from datetime import timedelta

    from gateway.models import Job, utcnow

    now = utcnow()
    with runtime.db.transaction() as session:
        for job_id, status, slurm_id, age in (("s1", "queued", None, 130), ("s2", "queued", "77", 10),
                                              ("s3", "processing", "78", 5)):
            session.add(Job(id=job_id, user_id=admin[0], status=status, qasm=BELL, shots=1, num_qubits=2,
                            request_hash="0" * 64, executor="local", cluster_profile="dev", work_dir="/tmp/x",
                            scheduler_job_id=slurm_id, created_at=now - timedelta(seconds=age)))
    _sign_in(client, admin[1])
    summary = client.get("/admin/").get_data(as_text=True).split('id="summary"')[1].split("</section>")[0]
    numbers = re.findall(r'<span class="number">([^<]+)</span>', summary)
    assert numbers[:2] == ["2", "1"] and re.fullmatch(r"2m 1\ds", numbers[2])


def test_a_big_pack_folds_its_jobs_and_names_every_user(client, admin, mocker):
    from gateway.schemas import QueueEntry

    big = [f"job-{i:03d}" for i in range(250)]
    mocker.patch("gateway.jobs.live_queue", return_value=[
        QueueEntry(slurm_job_id="901", pack_id="pk_big", job_id=None, user_id=None, job_ids=big,
                   user_ids=["u_a", "u_b"], name="qcos-pack", partition="debug", state="RUNNING", reason=None,
                   elapsed_seconds=5, node_list="nid001"),
        QueueEntry(slurm_job_id="902", pack_id="pk_small", job_id="solo", user_id="u_c", job_ids=["solo"],
                   user_ids=["u_c"], name="qcos-pack", partition="debug", state="PENDING", reason="Priority",
                   elapsed_seconds=None, node_list=None)])
    _sign_in(client, admin[1])
    rows = client.get("/admin/").get_data(as_text=True).split('id="queue"')[1].split("</table>")[0].split("<tr")[2:]
    big_row, small_row = rows
    assert "<summary>250 jobs</summary>" in big_row and big_row.count('aria-label="Cancel job ') == 250
    assert "<td>u_a, u_b</td>" in big_row
    assert "<details" not in small_row and 'aria-label="Cancel job solo"' in small_row and "<td>u_c</td>" in small_row
