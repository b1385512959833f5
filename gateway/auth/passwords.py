"""Passwords: scrypt hashes (blocking: run them in a worker thread) and the password policy."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
from typing import Any

from gateway.auth.errors import ValidationError

MIN_PASSWORD = 10
MAX_PASSWORD = 1024
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def hash_password(password: str) -> str:
    """``scrypt$n$r$p$salt_b64$hash_b64`` (blocking: ~50 ms)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, dklen=32, **_SCRYPT)
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """Constant-time check of ``password`` against a stored hash (blocking)."""
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        n_, r_, p_ = int(n), int(r), int(p)
        if kind != "scrypt" or not (2 <= n_ <= 2**20 and 1 <= r_ <= 32 and 1 <= p_ <= 16):
            return False
        expected = base64.b64decode(digest, validate=True)
        got = hashlib.scrypt(password.encode("utf-8"), salt=base64.b64decode(salt, validate=True),
                             dklen=len(expected), n=n_, r=r_, p=p_, maxmem=256 * 1024 * 1024)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


@functools.cache
def dummy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


def check_password_policy(password: Any) -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise ValidationError(f"a password has at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise ValidationError(f"a password has at most {MAX_PASSWORD} characters")
    return password


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
