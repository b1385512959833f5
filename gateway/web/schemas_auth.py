"""The login body (``POST /api/login``, JSON) as a :mod:`gateway.web.schema` model.

Used by :func:`gateway.auth.http.login` for JSON bodies (the HTML form's fields are the
same names). A wrong username or password stays a 401 ``bad-login``; only a body of the wrong shape
(a username that is no text, an unknown key) is refused here, with every problem.
"""

from __future__ import annotations

from typing import Optional

from pydantic import Field

from gateway.web.schema import Body, text

MAX_USERNAME = 64  # real ones are 2-32 characters (gateway.web.auth._USERNAME); longer can never match
MAX_PASSWORD = 1024  # gateway.web.auth.MAX_PASSWORD


class LoginBody(Body):
    """Log in: sets the session cookie and answers the CSRF token."""

    username: text(MAX_USERNAME)
    password: text(MAX_PASSWORD)
    next: Optional[text(512)] = Field(None, description="a local path to open after the login")


BODIES = {("POST", "/api/login"): LoginBody}
