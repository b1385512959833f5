"""The auth feature: logins, sessions, roles and CSRF protection for the pages and the API.

Theory of operation:

* Passwords are hashed with scrypt (n=2**14, r=8, p=1, 16-byte salt) and stored
  as ``scrypt$n$r$p$salt_b64$hash_b64``. Hashing runs in a worker thread (it is
  deliberately slow) and at most a few hashes run at once (each takes 16 MB).
* A session is a random token (``secrets.token_urlsafe(32)``); only its SHA-256
  is stored, with a CSRF token bound to it. Expired rows are deleted lazily:
  when presented, and whenever a new session is created.
* The token travels in an HttpOnly, SameSite=Strict cookie ``gw_session``
  (pages) or as ``Authorization: Bearer <token>`` (scripts). Every unsafe
  request made with the cookie must carry the session's CSRF token in
  ``X-CSRF-Token`` (or a ``csrf_token`` form field); Bearer requests carry no
  ambient credential and need none.
* A brake refuses logins (429, saying why and for how long): 5 failures in 5 minutes
  block that username for 60 s; 50 failures in 10 minutes block a client address,
  progressively longer (see :class:`LoginBrake`). It lives in memory, per process:
  with several gateway processes each keeps its own count. Behind a reverse proxy
  the client's address comes from ``X-Forwarded-For`` only when the proxy is listed
  in ``GATEWAY_TRUSTED_PROXIES`` (gateway.web.edge).
* ``auth_middleware`` must sit inside ``errors_middleware`` (gateway.web.app),
  which turns the errors of :mod:`gateway.auth.errors` into JSON.

Modules: ``passwords`` (scrypt, policy), ``brake`` (:class:`LoginBrake`), ``users``
(:class:`UserStore`: users, sessions, audit), ``http`` (middleware, ``require_role``,
login/logout/me), ``login_page``, ``plugin`` (``setup(app, deps)``). Nothing is
imported here, so importing the package stays cheap.
"""
