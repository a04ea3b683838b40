"""The admin page: ``/admin`` in a browser, server-rendered, no JavaScript.

Sign in with an admin API key (``qcos keys issue USER --admin``). The key
itself is never stored: the session cookie (Flask's, signed with
``QCOS_SECRET_KEY``; ``HttpOnly``, ``Secure`` unless
``QCOS_ADMIN_COOKIE_SECURE=false``, ``SameSite=Strict``, path ``/admin``,
8 hours) holds the key's SHA-256, and every page looks that up again, so
revoking the key or disabling its owner signs the session out at once.
Every form (sign-in included) carries a Flask-WTF CSRF token.

The page shows the queue (:func:`gateway.jobs.live_queue`: Slurm job,
pack and its jobs when there are packs, state, reason, elapsed), jobs waiting
in the gateway, the cluster's partitions (sinfo), and the users with this
month's usage (:mod:`gateway.usage`); its actions cancel a job
(:func:`gateway.jobs.cancel_job`) and disable or enable a user
(:func:`gateway.accounts.set_active`).
"""

from __future__ import annotations

import logging
import os
import secrets
from datetime import timedelta
from functools import wraps
from pathlib import Path

from flask import Blueprint, Flask, current_app, flash, g, redirect, render_template, request, session, url_for
from flask_wtf.csrf import CSRFError, CSRFProtect
from sqlalchemy import select

from gateway.accounts import AccountError, hash_api_key, list_users, set_active
from gateway.errors import JobNotFound
from gateway.logs import log_context
from gateway.metrics import queue_counts
from gateway.models import ApiKey, User, utcnow
from gateway.quotas import utc_day
from gateway.usage import monthly_usage
from hpc_jobs.executors.base import ExecutorError

log = logging.getLogger(__name__)

blueprint = Blueprint("admin_pages", __name__, url_prefix="/admin", template_folder="../templates",
                      static_folder="../static", static_url_path="/static")
csrf = CSRFProtect()

SESSION_LIFETIME = timedelta(hours=8)
_SESSION_KEY = "admin_key_sha256"
_MAX_KEY_LENGTH = 256


def _secret_key(settings) -> str:
    """``QCOS_SECRET_KEY``, or a random key created once in the state dir and
    shared by every worker of this host (written to a temporary file, then
    linked into place, so no worker ever reads a half-written key)."""
    if settings.secret_key:
        return settings.secret_key
    path = Path(settings.state_dir) / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".secret_key.{os.getpid()}.{secrets.token_hex(4)}")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_hex(32))
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another worker was first; use its key
        finally:
            temporary.unlink()
    return path.read_text().strip()


def init_app(app: Flask) -> None:
    """Session and CSRF settings for the admin page. CSRF is checked only on
    this blueprint's forms: the JSON API uses API keys, not cookies."""
    settings = app.extensions["qcos"].settings
    if not app.config.get("SECRET_KEY"):
        try:
            app.config["SECRET_KEY"] = _secret_key(settings)
        except OSError as exc:
            # The API works without it; only the admin page needs a session.
            log.error("admin page unavailable: no session key (%s); set QCOS_SECRET_KEY", exc)
    app.config.update(
        SESSION_COOKIE_NAME="qcos_admin",
        SESSION_COOKIE_PATH="/admin",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SECURE=settings.admin_cookie_secure,
        SESSION_COOKIE_SAMESITE="Strict",
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME,
        WTF_CSRF_CHECK_DEFAULT=False,
        WTF_CSRF_TIME_LIMIT=int(SESSION_LIFETIME.total_seconds()),
        # The CSRF token lives in the signed session; the Referer check would
        # refuse forms behind proxies that strip it, and adds nothing here.
        WTF_CSRF_SSL_STRICT=False,
    )
    csrf.init_app(app)


@blueprint.before_request
def _protect_forms():
    if not current_app.secret_key:
        return render_template("admin/error.html", title="Admin page unavailable",
                               message="The gateway has no session key: set QCOS_SECRET_KEY."), 503
    if request.method == "POST":
        csrf.protect()


@blueprint.after_request
def _page_headers(response):
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'")
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@blueprint.errorhandler(CSRFError)
def _csrf_error(exc: CSRFError):
    return render_template("admin/error.html", title="Form expired",
                           message="This form has expired or did not come from this page. "
                                   "Go back, reload the page and try again."), 400


def _signed_in_admin() -> User | None:
    """The admin whose key the session holds, if that key is still an
    unrevoked admin key of an active user."""
    key_hash = session.get(_SESSION_KEY)
    if not isinstance(key_hash, str):
        return None
    with current_app.extensions["qcos"].db.session() as db:
        row = db.execute(select(ApiKey, User).join(User).where(ApiKey.key_hash == key_hash)).first()
    if row is None:
        return None
    api_key, user = row
    if api_key.revoked_at is not None or not api_key.is_admin or not user.is_active:
        return None
    return user


def admin_page(view):
    """Decorator: the view needs a signed-in admin (else: to the sign-in form)."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        admin = _signed_in_admin()
        if admin is None:
            session.pop(_SESSION_KEY, None)
            return redirect(url_for("admin_pages.login"), code=303)
        g.user = admin
        with log_context(user_id=admin.id):
            return view(*args, **kwargs)

    return wrapper


@blueprint.route("/login", methods=["GET", "POST"])
def login():
    """The sign-in form; POST checks the admin key (401 and the form again when it is not one)."""
    if request.method == "GET":
        if _signed_in_admin() is not None:
            return redirect(url_for("admin_pages.dashboard"), code=303)
        return render_template("admin/login.html")
    key = (request.form.get("api_key") or "").strip()
    admin = None
    if key and len(key) <= _MAX_KEY_LENGTH:
        from gateway.accounts import credentials_for_key

        with current_app.extensions["qcos"].db.session() as db:
            credentials = credentials_for_key(db, key)
        if credentials is not None and credentials[1].is_admin:
            admin = credentials[0]
    if admin is None:
        log.warning("admin sign-in refused")
        return render_template("admin/login.html", error="That is not a valid admin API key."), 401
    # A fresh session (and CSRF token) on sign-in: nothing from before carries over.
    session.clear()
    session[_SESSION_KEY] = hash_api_key(key)
    session.permanent = True
    with log_context(user_id=admin.id):
        log.info("admin signed in to the admin page")
    return redirect(url_for("admin_pages.dashboard"), code=303)


@blueprint.post("/logout")
def logout():
    """Forget the session."""
    session.clear()
    return redirect(url_for("admin_pages.login"), code=303)


@blueprint.get("")
@blueprint.get("/")
@admin_page
def dashboard():
    """Queue, cluster, users and their usage this month, with the actions."""
    from gateway import jobs
    from gateway.quotas import jobs_on

    runtime = current_app.extensions["qcos"]
    queue, queue_error, partitions, cluster_error = [], None, [], None
    try:
        queue = jobs.live_queue(runtime)
    except ExecutorError as exc:
        queue_error = f"The scheduler did not answer: {exc}"
    try:
        partitions = runtime.executor.partitions()
    except ExecutorError as exc:
        cluster_error = f"The scheduler did not answer: {exc}"
    now = utcnow()
    period = now.strftime("%Y-%m")
    with runtime.db.session() as db:
        counts = queue_counts(db)
        users = list_users(db)
        usage = monthly_usage(db, period)
        today = {user.id: jobs_on(db, user_id=user.id, day=utc_day(now)) for user in users}
    return render_template("admin/dashboard.html", executor=runtime.executor.name, queue=queue,
                           queue_error=queue_error, partitions=partitions, cluster_error=cluster_error,
                           counts=counts, now=now, users=users, usage=usage, today=today, period=period,
                           admin=g.user, whole_seconds=jobs.whole_seconds)


@blueprint.post("/actions/cancel")
@admin_page
def cancel():
    """Cancel the job named in the form (any user's; idempotent)."""
    from gateway.jobs import cancel_job

    job_id = (request.form.get("job_id") or "").strip()[:64]
    try:
        with log_context(job_id=job_id):
            job = cancel_job(current_app.extensions["qcos"], job_id, user=None,
                             reason="cancelled by an administrator")
            log.info("admin cancelled job %s from the admin page: now %s", job_id, job.status)
        flash(f"Job {job.id}: {job.status}" + (f" ({job.error})" if job.error else ""), "ok")
    except JobNotFound:
        flash(f"No job {job_id}.", "error")
    return redirect(url_for("admin_pages.dashboard") + "#queue", code=303)


def _set_active(active: bool):
    user_id = (request.form.get("user_id") or "").strip()[:64]
    if not active and user_id == g.user.id:
        flash("You cannot disable your own account here.", "error")
        return redirect(url_for("admin_pages.dashboard") + "#users", code=303)
    try:
        with current_app.extensions["qcos"].db.transaction() as db:
            user = set_active(db, user_id, active)
            email = user.email
        log.info("admin %s user %s from the admin page", "enabled" if active else "disabled", user_id)
        flash(f"{email} is {'enabled' if active else 'disabled'}.", "ok")
    except AccountError:
        flash(f"No user {user_id}.", "error")
    return redirect(url_for("admin_pages.dashboard") + "#users", code=303)


@blueprint.post("/actions/disable-user")
@admin_page
def disable_user():
    """Disable the user named in the form: every key of theirs is refused from the next request on."""
    return _set_active(False)


@blueprint.post("/actions/enable-user")
@admin_page
def enable_user():
    """Re-enable the user named in the form."""
    return _set_active(True)
