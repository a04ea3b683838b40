"""Request authentication: the API key from ``X-API-Key`` or ``Authorization: Bearer``."""

from __future__ import annotations

from functools import wraps
from typing import Callable, TypeVar

from flask import current_app, g, request

from gateway.accounts import user_for_key
from gateway.errors import AuthInvalid, AuthRequired

F = TypeVar("F", bound=Callable)


def api_key_from_request() -> str | None:
    """The presented key, or ``None`` when the request carries none."""
    key = request.headers.get("X-API-Key", "").strip()
    if key:
        return key
    authorization = request.headers.get("Authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return None


def require_api_key(view: F) -> F:
    """Decorator: authenticate the caller into ``g.user`` or answer 401.

    Raises :class:`AuthRequired` without a key, :class:`AuthInvalid` for an
    unknown, revoked or disabled key. The key itself is never logged.
    """

    @wraps(view)
    def wrapper(*args, **kwargs):
        key = api_key_from_request()
        if key is None:
            raise AuthRequired()
        if len(key) > 256:
            raise AuthInvalid()
        with current_app.extensions["qcos"].db.session() as session:
            user = user_for_key(session, key)
        if user is None:
            raise AuthInvalid()
        g.user = user
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
