"""The HTTP edge: who the client is, which host it asked for, and the headers every answer carries.

Theory of operation
-------------------
* **Client address and scheme.** Directly connected, the client is the socket's peer
  and the scheme is whether the socket is TLS. Behind a reverse proxy that terminates
  TLS, both come from ``X-Forwarded-For`` / ``X-Forwarded-Proto`` -- but only when the
  peer is one of the configured trusted proxies (``GATEWAY_TRUSTED_PROXIES``); anyone
  else could write those headers. The request is then cloned with the client's address
  and scheme, so ``request.remote`` (the login brake) and ``request.secure`` (the
  session cookie's ``Secure`` flag) are right everywhere after this middleware.
* **Host.** A request whose ``Host`` names none of this gateway's names is refused
  (421): no DNS-rebinding page can talk to the gateway through a name it controls.
  Loopback names and the HTTP bind address are always allowed; a site adds its public
  names with ``GATEWAY_PUBLIC_HOSTS`` (``*`` allows any, e.g. behind a proxy that
  already checks it).
* **Headers on every answer** (``on_response_prepare``): ``X-Content-Type-Options:
  nosniff``; pages get a Content-Security-Policy, ``frame-ancestors 'none'`` /
  ``X-Frame-Options: DENY`` and ``Referrer-Policy`` unless the handler set stricter
  ones; API answers (which carry callers' numbers) get ``Cache-Control: no-store``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Iterable

from aiohttp import web

from gateway.web.problems import plain_body

PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; media-src 'self'; "
            "connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
_WILDCARDS = ("0.0.0.0", "::", "")


def _networks(values: Iterable[str]) -> tuple:
    return tuple(ipaddress.ip_network(v, strict=False) for v in values)


def host_name(host: str) -> str:
    """``Host`` header value without its port, lower case (``[::1]:8080`` -> ``::1``)."""
    host = (host or "").strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host


@dataclass(frozen=True)
class EdgePolicy:
    trusted_proxies: tuple = ()
    public_hosts: tuple[str, ...] = ()
    bind_host: str = "127.0.0.1"
    allowed: frozenset = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "trusted_proxies", _networks(self.trusted_proxies))
        names = {*_LOOPBACK_NAMES, *(host_name(h) for h in self.public_hosts)}
        if self.bind_host not in _WILDCARDS:
            names.add(host_name(self.bind_host) if ":" not in self.bind_host else self.bind_host.lower())
        object.__setattr__(self, "allowed", frozenset(names))

    def host_allowed(self, host: str | None) -> bool:
        return "*" in self.allowed or host_name(host or "") in self.allowed

    def _trusted(self, address: str | None) -> bool:
        try:
            ip = ipaddress.ip_address(address or "")
        except ValueError:
            return False
        return any(ip in net for net in self.trusted_proxies)

    def client(self, peer: str | None, forwarded_for: str | None, forwarded_proto: str | None,
               secure: bool) -> tuple[str | None, bool]:
        """``(client address, secure)`` of a request from ``peer`` with these headers."""
        if not self._trusted(peer):
            return peer, secure
        client = peer
        for hop in reversed([h.strip() for h in (forwarded_for or "").split(",") if h.strip()]):
            client = hop
            if not self._trusted(hop):
                break  # the first address the trusted proxies did not add themselves
        proto = (forwarded_proto or "").split(",")[0].strip().lower()
        return client, secure or proto == "https"


EDGE = web.AppKey("edge", EdgePolicy)


def same_origin(request: web.Request) -> bool:
    """A browser's ``Origin`` (when sent) must be this very scheme and host."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # not a browser, or a same-origin GET (browsers send Origin on POST and WebSocket)
    return origin == f"{'https' if request.secure else 'http'}://{request.host}"


@web.middleware
async def edge_middleware(request: web.Request, handler):
    policy = request.app.get(EDGE) or EdgePolicy()
    if not policy.host_allowed(request.host):
        return web.json_response(plain_body("unknown-host", "this gateway does not serve that host name"),
                                 status=421)
    if policy.trusted_proxies:
        remote, secure = policy.client(request.remote, request.headers.get("X-Forwarded-For"),
                                       request.headers.get("X-Forwarded-Proto"), request.secure)
        if remote != request.remote or secure != request.secure:
            request = request.clone(remote=remote, scheme="https" if secure else request.scheme)
    return await handler(request)


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Headers every answer carries (``on_response_prepare``: error pages and files included)."""
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    ctype = headers.get("Content-Type", "")
    if ctype.startswith("text/html"):
        headers.setdefault("Content-Security-Policy", PAGE_CSP)
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "same-origin")
    if request.path.startswith("/api/") or request.path in ("/healthz", "/metrics") or ctype.startswith("text/html"):
        headers.setdefault("Cache-Control", "no-store")


def install(app: web.Application, policy: EdgePolicy) -> None:
    app[EDGE] = policy
    app.on_response_prepare.append(security_headers)
