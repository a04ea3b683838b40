"""Request authentication: the API key from ``X-API-Key`` or ``Authorization: Bearer``.

The key is looked up once per request, by :func:`authenticate_request`, a
``before_request`` hook that runs before the rate limiter's (the limiter's key
and limit depend on who the caller is). Views declare that they need a key
with :func:`require_api_key`, which answers 401 when the lookup found none.

On PostgreSQL a valid key found by the lookup is reused for up to
``QCOS_AUTH_CACHE_TTL`` seconds (5) without a query, but only while the
process listens for account changes (:mod:`gateway.notify`): revoking a key,
disabling a user or changing a tier announces itself on commit and every
gateway process forgets its cached keys within milliseconds. While not
listening (SQLite; PostgreSQL reconnecting) every request looks its key up.

After the hook, for a view that requires a key:

- ``g.user``: the caller, a :class:`gateway.accounts.Caller` (``id``,
  ``email``, ``tier``… as on :class:`gateway.models.User`, read-only), or ``None``;
- ``g.api_key_hash``: SHA-256 hex digest of the presented key (as stored in
  ``api_keys.key_hash``) when it is valid, else ``None``; the raw key is
  never kept, logged or used as a storage key;
- ``g.api_key_is_admin``: whether that key carries the admin role;
- ``g.auth_error``: the :class:`ApiError` to answer when there is no user.

For views that need no key nothing is looked up and ``g.user`` is ``None``.
"""

from __future__ import annotations

from functools import wraps
from typing import Callable, TypeVar

from flask import current_app, g, request

from gateway.accounts import Caller, credentials_for_key, hash_api_key
from gateway.errors import AdminRequired, AuthInvalid, AuthRequired

F = TypeVar("F", bound=Callable)

# Set on views wrapped by require_api_key; functools.wraps copies it to outer decorators.
_REQUIRES_KEY = "qcos_requires_api_key"
_MAX_KEY_LENGTH = 256


class ConflictingKeys(Exception):
    """``X-API-Key`` and ``Authorization: Bearer`` carry different keys."""


def api_key_from_request() -> str | None:
    """The presented key, or ``None`` when the request carries none.

    Raises :class:`ConflictingKeys` when both headers carry keys that differ:
    guessing which one was meant could run a job on the wrong account.
    """
    header_key = request.headers.get("X-API-Key", "").strip() or None
    bearer_key = None
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        bearer_key = credentials.strip()
    if header_key and bearer_key and header_key != bearer_key:
        raise ConflictingKeys()
    return header_key or bearer_key


def view_requires_api_key(endpoint: str | None) -> bool:
    """Whether the view of ``endpoint`` (``request.endpoint``) is wrapped by :func:`require_api_key`."""
    view = current_app.view_functions.get(endpoint or "")
    return bool(view is not None and getattr(view, _REQUIRES_KEY, False))


def authenticate() -> None:
    """Look the presented key up and fill ``g.user``, ``g.api_key_hash`` and
    ``g.auth_error``. One indexed query, or none when the key is in the
    process's :class:`gateway.accounts.CredentialCache`. Database errors
    propagate (503)."""
    g.user = None
    g.api_key_hash = None
    g.api_key_is_admin = False
    g.auth_error = None
    try:
        key = api_key_from_request()
    except ConflictingKeys:
        g.auth_error = AuthInvalid("X-API-Key and Authorization: Bearer carry different keys; send one")
        g.qcos_authenticated = True
        return
    if key is None:
        g.auth_error = AuthRequired()
    elif len(key) > _MAX_KEY_LENGTH:
        g.auth_error = AuthInvalid()
    else:
        caller = caller_for_key(current_app.extensions["qcos"], key)
        if caller is None:
            g.auth_error = AuthInvalid()
        else:
            g.user = caller
            g.api_key_hash = hash_api_key(key)
            g.api_key_is_admin = caller.is_admin
    g.qcos_authenticated = True


def caller_for_key(runtime, key: str) -> Caller | None:
    """The owner of an unrevoked ``key`` of an active user, or ``None``.

    From ``runtime.credentials`` while the process listens for account
    changes (PostgreSQL), else one query; a valid key found by the query is
    cached then. Unknown keys are never cached.
    """
    digest = hash_api_key(key)
    cache = runtime.credentials
    runtime.start_listening()
    if runtime.listening:
        cached = cache.get(digest)
        if cached is not None:
            return cached
    generation = cache.generation
    with runtime.db.read_session() as session:
        credentials = credentials_for_key(session, key)
    if credentials is None:
        return None
    caller = Caller.of(*credentials)
    if runtime.listening:
        cache.put(digest, caller, generation)
    return caller


def authenticate_request() -> None:
    """``before_request`` hook: authenticate when the routed view requires a key.

    Never answers 401 itself: an unauthenticated request must still pass the
    rate limiter (limited by address) before the view refuses it.
    """
    g.user = None
    g.api_key_hash = None
    if view_requires_api_key(request.endpoint):
        authenticate()


def require_api_key(view: F) -> F:
    """Decorator: the view needs an authenticated caller in ``g.user``.

    Raises :class:`AuthRequired` without a key, :class:`AuthInvalid` for an
    unknown, revoked or disabled key. The key itself is never logged.
    """

    @wraps(view)
    def wrapper(*args, **kwargs):
        # Normally the before_request hook already looked the key up; an app
        # built without the hook still authenticates here.
        if not g.get("qcos_authenticated"):
            authenticate()
        if g.user is None:
            raise g.auth_error
        return view(*args, **kwargs)

    setattr(wrapper, _REQUIRES_KEY, True)
    return wrapper  # type: ignore[return-value]


def require_admin(view: F) -> F:
    """Decorator: the view needs an admin key (401 without a valid key,
    403 ``ADMIN_REQUIRED`` with a valid key that is not an admin key)."""

    @wraps(view)
    def admin_only(*args, **kwargs):
        if not g.get("api_key_is_admin"):
            raise AdminRequired()
        return view(*args, **kwargs)

    return require_api_key(admin_only)  # type: ignore[return-value]
