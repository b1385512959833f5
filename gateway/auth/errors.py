"""The authentication layer's errors (one root, :class:`AuthError`, under ``GatewayError``)."""

from __future__ import annotations

from gateway.errors import GatewayError


class AuthError(GatewayError):
    """Root of the authentication layer's errors."""

    status_code = 400
    error_id = "auth-error"


class ValidationError(AuthError):
    """A username, role or password breaks the rules."""

    status_code = 400
    error_id = "invalid-user"


class UserExists(AuthError):
    status_code = 409
    error_id = "user-exists"


class UnknownUser(AuthError):
    status_code = 404
    error_id = "not-found"


class Unauthenticated(AuthError):
    status_code = 401
    error_id = "unauthenticated"


class Forbidden(AuthError):
    status_code = 403
    error_id = "forbidden"


class LastAdmin(AuthError):
    status_code = 409
    error_id = "last-admin"


class TooManyAttempts(AuthError):
    status_code = 429
    error_id = "too-many-attempts"
