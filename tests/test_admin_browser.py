"""The admin page in a real browser against a running gateway and poller: sign in
with an admin key, see a running job, cancel it. Screenshots are read back with
OCR, so the test checks what a person sees, not only the HTML. A full pack
(served from the test app, with the queue mocked) is one folded row."""

from __future__ import annotations

import re
import subprocess
import threading
import time

import pytest
import requests
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser import ocr_text
from tests.stack import BIN, REPO_ROOT, gateway_stack

pytestmark = pytest.mark.e2e

JOB_ID = "ocrcheck"


def _slow_circuit(qubits: int = 16, layers: int = 20) -> str:
    """A circuit that measures mid-way, so Aer simulates shot by shot: about
    half a second per shot here, long enough to be seen running."""
    lines = ['OPENQASM 2.0;', 'include "qelib1.inc";', f"qreg q[{qubits}];", f"creg c[{qubits}];"]
    for _ in range(layers):
        lines += [f"h q[{i}]; t q[{i}]; cx q[{i}],q[{(i + 1) % qubits}];" for i in range(qubits)]
    lines += ["measure q[0] -> c[0];", *(f"rx(0.3) q[{i}];" for i in range(qubits)), "measure q -> c;"]
    return "\n".join(lines)


def _wait_for(chromium, predicate, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        chromium.refresh()
        if predicate():
            return
        time.sleep(0.5)
    pytest.fail(f"the admin page never showed {what}:\n{chromium.find_element(By.TAG_NAME, 'main').text}")


def _settle(chromium, condition, what: str, timeout: float = 15):
    """Wait, without reloading, for ``condition(driver)`` to be truthy and return it.

    A click returns before Chromium has loaded the page it leads to, so a node
    found early may belong to a document being replaced: a stale node counts
    as not yet. On timeout the failure shows the page as it is then."""
    try:
        return WebDriverWait(chromium, timeout, ignored_exceptions=(StaleElementReferenceException,)).until(condition)
    except TimeoutException:
        pytest.fail(f"the admin page never showed {what}:\n{chromium.find_element(By.TAG_NAME, 'body').text[:500]}")


def test_sign_in_see_a_running_job_and_cancel_it(tmp_path, chromium):
    with gateway_stack(tmp_path, database_url=f"sqlite:///{tmp_path / 'qcos.db'}", workers=1) as stack:
        issued = subprocess.run([str(BIN / "qcos"), "keys", "issue", "e2e@example.org", "--admin"], env=stack.env,
                                cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
        admin_key = re.search(r"api_key: (\S+)", issued).group(1)
        stack.submit(_slow_circuit(), shots=100, job_id=JOB_ID)
        try:
            _sign_in_and_cancel(chromium, stack, admin_key, tmp_path)
        finally:
            # Whatever happened above, the batch job must not outlive the test.
            requests.delete(f"{stack.base_url}/jobs/{JOB_ID}", headers=stack.headers(), timeout=30)


def _sign_in_and_cancel(chromium, stack, admin_key, tmp_path):
    chromium.get(f"{stack.base_url}/admin")
    assert chromium.current_url.endswith("/admin/login")
    chromium.find_element(By.ID, "api_key").send_keys(admin_key)
    chromium.find_element(By.CSS_SELECTOR, "form.login button[type=submit]").click()
    _settle(chromium, lambda driver: driver.current_url.endswith("/admin/"), "the dashboard after signing in")
    cookie = chromium.get_cookie("qcos_admin")
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
    assert admin_key not in cookie["value"]

    def running_row():
        rows = [row for row in chromium.find_elements(By.CSS_SELECTOR, "#queue tbody tr") if JOB_ID in row.text]
        return rows[0] if rows and "RUNNING" in rows[0].text else None

    _wait_for(chromium, running_row, f"job {JOB_ID} RUNNING")
    row = running_row()
    assert "local" in row.text and "e2e@example.org" not in row.text  # user id, not email, in the queue
    page = tmp_path / "admin-running.png"
    chromium.save_screenshot(str(page))
    seen = ocr_text(page)
    for text in ("Queue", "RUNNING", "Cluster", "Users", "e2e@example.org"):
        assert text in seen, f"{text!r} not visible in {page}:\n{seen}"
    # The job id in monospace beside a bordered button: tesseract's page layout
    # sometimes drops it, so it is read on its own, from its own screenshot.
    job_id_image = tmp_path / "job-id.png"
    row.find_element(By.XPATH, f".//code[normalize-space()='{JOB_ID}']").screenshot(str(job_id_image))
    readings = {ocr_text(job_id_image, layout=layout).strip(" |\n") for layout in ("line", "word")}
    assert JOB_ID in readings, readings
    button = row.find_element(By.CSS_SELECTOR, f"button[aria-label='Cancel job {JOB_ID}']")
    button_image = tmp_path / "cancel-button.png"
    button.screenshot(str(button_image))
    # A button's border may read as "|" on either side; as a line or as a word, it says Cancel.
    readings = {ocr_text(button_image, layout=layout).strip(" |\n") for layout in ("line", "word")}
    assert "Cancel" in readings, readings

    button.click()
    # As at sign-in, the click returns before the browser has loaded the answer.
    flash = _settle(chromium, lambda driver: [node.text for node in driver.find_elements(By.CSS_SELECTOR, ".flash.ok")],
                    "the cancel confirmation")[0]
    assert flash == f"Job {JOB_ID}: failed (cancelled by an administrator)"
    answer = tmp_path / "admin-cancelled.png"
    chromium.save_screenshot(str(answer))
    assert "cancelled by an administrator" in ocr_text(answer)
    _wait_for(chromium, lambda: JOB_ID not in chromium.find_element(By.ID, "queue").text,
              f"job {JOB_ID} gone from the queue", timeout=30)
    after = tmp_path / "admin-after.png"
    chromium.save_screenshot(str(after))
    assert "queue is empty" in ocr_text(after)

    status = requests.get(f"{stack.base_url}/status/{JOB_ID}", headers=stack.headers(), timeout=10).json()
    assert (status["status"], status["error"]) == ("failed", "cancelled by an administrator")


@pytest.fixture
def served(app):
    """The test app served over HTTP from a thread: base URL."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_full_pack_is_one_folded_row_until_opened(served, runtime, chromium, mocker, tmp_path):
    from gateway.accounts import find_user, issue_key
    from gateway.schemas import QueueEntry
    from tests.conftest import make_user

    user_id, _ = make_user(runtime, email="root@example.org")
    with runtime.db.transaction() as session:
        admin_key = issue_key(session, find_user(session, user_id), admin=True)
    job_ids = [f"sweep-{i:03d}" for i in range(250)]
    mocker.patch("gateway.jobs.live_queue", return_value=[
        QueueEntry(slurm_job_id="901", pack_id="pk_sweep", job_id=None, user_id=None, job_ids=job_ids,
                   user_ids=["u_a", "u_b"], name="qcos-pack", partition="debug", state="RUNNING", reason=None,
                   elapsed_seconds=65, node_list="nid001")])
    chromium.get(f"{served}/admin/login")
    chromium.find_element(By.ID, "api_key").send_keys(admin_key)
    chromium.find_element(By.CSS_SELECTOR, "form.login button[type=submit]").click()
    _settle(chromium, lambda driver: driver.find_elements(By.CSS_SELECTOR, "#queue details.jobs"), "the folded pack")
    row = chromium.find_element(By.CSS_SELECTOR, "#queue tbody tr")
    buttons = row.find_elements(By.CSS_SELECTOR, "button[aria-label^='Cancel job ']")
    assert len(buttons) == 250 and not any(button.is_displayed() for button in buttons[:3])
    assert row.size["height"] < 120, row.size
    page = tmp_path / "folded.png"
    chromium.save_screenshot(str(page))
    seen = ocr_text(page)
    assert "250 jobs" in seen, seen
    # Small text with underscores in a table: like the job id above, read from its own screenshot.
    users_image = tmp_path / "users.png"
    row.find_elements(By.TAG_NAME, "td")[3].screenshot(str(users_image))
    readings = {ocr_text(users_image, layout=layout).strip(" |\n") for layout in ("line", "word")}
    assert "u_a, u_b" in readings, readings
    row.find_element(By.TAG_NAME, "summary").click()
    first = row.find_element(By.CSS_SELECTOR, "button[aria-label='Cancel job sweep-000']")
    assert first.is_displayed() and row.size["height"] > 250 * 20
