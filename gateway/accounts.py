"""Users and API keys: creation and lookup.

API keys are 256-bit random tokens (``secrets.token_urlsafe(32)``) with the
prefix ``qcos_``. Only their SHA-256 hash is stored: for a secret of that
entropy a fast hash is enough (no guessing attack can enumerate the key
space), so the lookup is one indexed equality on the hash. The comparison
after the lookup uses :func:`hmac.compare_digest`.

:class:`CredentialCache` keeps looked-up keys for a few seconds
(``QCOS_AUTH_CACHE_TTL``) so most requests need no query for their key. It
is used only while the process listens for account changes
(:mod:`gateway.notify`): :func:`revoke_key`, :func:`set_active` and
:func:`set_tier` announce theirs, and every process empties its cache when
the announcement arrives, milliseconds after the commit.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.models import ApiKey, User, utcnow
from gateway.notify import notify_accounts_changed
from gateway.tiers import Tier

KEY_PREFIX = "qcos_"


def hash_api_key(key: str) -> str:
    """SHA-256 hex digest of an API key (64 characters)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_api_key() -> str:
    """A fresh API key: ``qcos_`` + 43 URL-safe characters (256 random bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class CreatedUser:
    """A new user and their first key; ``api_key`` is the only copy of the secret."""

    user_id: str
    email: str
    tier: str
    api_key: str


class AccountError(ValueError):
    """A user cannot be created as asked (unknown tier, email taken)."""


def create_user(session: Session, *, email: str, tier: str, tiers: dict[str, Tier]) -> CreatedUser:
    """Create a user with one API key inside the caller's transaction.

    Raises :class:`AccountError` for an unknown tier or an email already in use.
    """
    if tier not in tiers:
        raise AccountError(f"unknown tier {tier!r}; known: {', '.join(tiers)}")
    email = email.strip()
    if "@" not in email or len(email) > 320:
        raise AccountError(f"not an email address: {email!r}")
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        raise AccountError(f"a user with email {email} already exists")
    user = User(id="user_" + secrets.token_hex(6), email=email, tier=tier, is_active=True)
    session.add(user)
    key = issue_key(session, user)
    return CreatedUser(user.id, user.email, user.tier, key)


def issue_key(session: Session, user: User, *, admin: bool = False) -> str:
    """Add a new API key for ``user`` (an admin key with ``admin``); returns the
    secret (shown once, never stored)."""
    key = new_api_key()
    session.add(ApiKey(user=user, key_hash=hash_api_key(key), prefix=key[:9], created_at=utcnow(), is_admin=admin))
    session.flush()
    return key


def credentials_for_key(session: Session, key: str) -> tuple[User, ApiKey] | None:
    """The active user owning an unrevoked ``key``, and that key's record; or ``None``."""
    digest = hash_api_key(key)
    row = session.execute(
        select(ApiKey, User).join(User).where(ApiKey.key_hash == digest)
    ).first()
    if row is None:
        return None
    api_key, user = row
    if not hmac.compare_digest(api_key.key_hash, digest) or api_key.revoked_at is not None or not user.is_active:
        return None
    return user, api_key


@dataclass(frozen=True)
class Caller:
    """The owner of a valid key, as a request sees it (``g.user``): the
    :class:`User` attributes views read (``id``, ``email``, ``tier``,
    ``is_active``, ``created_at``) plus the key's ``key_id`` and
    ``is_admin``. Immutable, so it can be cached across requests; not an ORM
    instance (cheaper to hand out than a detached :class:`User`)."""

    id: str
    email: str
    tier: str
    created_at: datetime
    key_id: int
    is_admin: bool
    is_active: bool = True

    @classmethod
    def of(cls, user: User, api_key: ApiKey) -> "Caller":
        return cls(user.id, user.email, user.tier, user.created_at, api_key.id, api_key.is_admin)


class CredentialCache:
    """Valid keys by SHA-256 digest, each kept at most ``ttl`` seconds; at most ``maxsize`` keys.

    Thread-safe. :meth:`clear` (on an account change) also bumps
    :attr:`generation`; a lookup that started before a clear passes its
    generation to :meth:`put` and is not stored, so a key revoked during
    the lookup cannot be cached as valid. ``ttl`` 0 caches nothing.
    """

    def __init__(self, ttl: float, *, maxsize: int = 10_000) -> None:
        from cachetools import TTLCache

        self.ttl = ttl
        self._entries: TTLCache[str, Caller] = TTLCache(maxsize=maxsize, ttl=ttl or 1)
        self._lock = threading.Lock()
        self.generation = 0

    def get(self, digest: str) -> Caller | None:
        if not self.ttl:
            return None
        with self._lock:
            return self._entries.get(digest)

    def put(self, digest: str, caller: Caller, generation: int) -> None:
        if not self.ttl:
            return
        with self._lock:
            if generation == self.generation:
                self._entries[digest] = caller

    def clear(self) -> None:
        with self._lock:
            self.generation += 1
            self._entries.clear()


def find_user(session: Session, who: str) -> User:
    """A user by ``user_id`` or email. Raises :class:`AccountError` if there is none."""
    user = session.scalar(select(User).where((User.id == who) | (User.email == who)))
    if user is None:
        raise AccountError(f"no user {who!r}")
    return user


def list_users(session: Session) -> list[User]:
    """All users, oldest first."""
    return list(session.scalars(select(User).order_by(User.created_at, User.id)))


def set_tier(session: Session, who: str, tier: str, tiers: dict[str, Tier]) -> User:
    """Move a user to another tier (takes effect on their next request)."""
    if tier not in tiers:
        raise AccountError(f"unknown tier {tier!r}; known: {', '.join(tiers)}")
    user = find_user(session, who)
    user.tier = tier
    notify_accounts_changed(session)
    return user


def set_active(session: Session, who: str, active: bool) -> User:
    """Disable (every key answers AUTH_INVALID at once) or re-enable a user."""
    user = find_user(session, who)
    user.is_active = active
    notify_accounts_changed(session)
    return user


def list_keys(session: Session, who: str) -> list[ApiKey]:
    """A user's keys (revoked ones included), oldest first; secrets are not stored."""
    user = find_user(session, who)
    return list(session.scalars(select(ApiKey).where(ApiKey.user_id == user.id).order_by(ApiKey.id)))


def revoke_key(session: Session, key_id: int) -> ApiKey:
    """Revoke key ``key_id``; it is refused from the next request on. Idempotent."""
    key = session.get(ApiKey, key_id)
    if key is None:
        raise AccountError(f"no API key with id {key_id}")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        notify_accounts_changed(session)
    return key
