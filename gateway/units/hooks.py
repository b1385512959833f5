"""Units with their own systems: a webhook per unit, HMAC-signed, retried with backoff.

``unit_hooks.yaml`` (``GATEWAY_UNIT_HOOKS``; absent: no webhooks) names, per catalogue unit,
the URL its system listens on and the shared secret::

    hooks:
      water: {url: "https://ticket.water.example/12345", secret: "at least 16 characters"}

The file holds secrets: it is not part of the configuration /admin versions; keep it private
(mode 600, like the gateway's state). Events (``dispatched``, ``reminder``, ``overdue``,
``withdrawn``, and ``warning`` when a supervisor forwards an early warning to the unit, ``warning.grown``
when that warning grows,
:mod:`gateway.supervision.warnings_store`) are queued in ``unit_hook_deliveries`` in the transaction that made them and
POSTed as JSON by the units feature's job; headers ``X-Gateway-Event``, ``X-Gateway-Delivery``
(the delivery id: a receiver drops a repeat), ``X-Gateway-Signature: sha256=<hex HMAC-SHA256 of
the body with the secret>``. A 2xx answer delivers it; anything else is retried after 30 s, 1,
2, 4 ... minutes (at most an hour) and given up after :data:`MAX_ATTEMPTS` (the outbox's life is
:mod:`gateway.units.outbox`, shared with the early warnings' notices); pending and failed
deliveries are listed for supervisors (``GET /api/supervisor/unit-hooks``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import sqlalchemy as sa

from gateway.errors import ConfigError
from gateway.ivr_flows import yamlsrc
from gateway.ivr_flows.fields import Reader
from gateway.ticketing.models import UnitHookDelivery
from gateway.ticketing.rows import iso
from gateway.ticketing.store import TicketStore
from gateway.units import outbox
from gateway.units.outbox import CLAIM, MAX_ATTEMPTS, backoff  # noqa: F401 - where they were

TIMEOUT = 10.0


@dataclass(frozen=True)
class Hook:
    unit_id: str
    url: str
    secret: str = ""

    def __repr__(self) -> str:  # never the secret in logs
        return f"Hook({self.unit_id!r}, {self.url!r})"


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def parse_hooks(text: str, units: dict, file: str = "unit_hooks.yaml") -> dict[str, Hook]:
    src = yamlsrc.parse(text, file)
    if src.problems:
        raise ConfigError(src.problems)
    r = Reader(src)
    top = r.mapping(src.data, (), optional=("hooks",)) or {}
    raw = top.get("hooks") or {}
    m = r.mapping(raw, ("hooks",), optional=tuple(raw) if isinstance(raw, dict) else ()) or {}
    out: dict[str, Hook] = {}
    for unit_id, spec in m.items():
        path = ("hooks", unit_id)
        if unit_id not in units:
            src.problem(path, f"unknown unit {unit_id!r}")
            continue
        h = r.mapping(spec, path, required=("url", "secret"))
        if not h or "url" not in h or "secret" not in h:
            continue
        url = r.text(h["url"], path + ("url",), one_line=True)
        parts = urlsplit(url or "")
        if url and (parts.scheme not in ("http", "https") or not parts.hostname):
            src.problem(path + ("url",), f"{url!r} is not an http(s) URL")
            url = None
        secret = r.text(h["secret"], path + ("secret",), one_line=True)
        if secret and (len(secret) < 16 or not re.fullmatch(r"[\x21-\x7e]+", secret)):
            src.problem(path + ("secret",), "the secret must be at least 16 printable characters")
            secret = None
        if url and secret:
            out[unit_id] = Hook(unit_id, url, secret)
    if src.problems:
        raise ConfigError(src.problems)
    return out


def load_hooks(path: Path | None, units: dict) -> dict[str, Hook]:
    if path is None or not Path(path).exists():
        return {}
    return parse_hooks(Path(path).read_text(encoding="utf-8"), units, file=str(path))


class HookSender:
    """Sends due deliveries; each claimed (``claimed_until``) so one instance sends it at a time.

    ``model`` is the outbox table: the units' ``unit_hook_deliveries`` by default; any table made
    with :class:`gateway.ticketing.models.OutboxRow` (plus ``unit_id`` naming the hook and
    ``event``) is sent the same way (the early warnings' ``warning_deliveries``)."""

    def __init__(self, store: TicketStore, hooks: dict[str, Hook], *, post=None, model=UnitHookDelivery) -> None:
        self.store = store
        self.hooks = hooks
        self.post = post  # async (url, body, headers) -> status; default: aiohttp
        self.model = model
        self.counters = {"delivered": 0, "failed_attempts": 0, "given_up": 0}

    async def _post(self, url: str, body: bytes, headers: dict) -> int:
        if self.post is not None:
            return await self.post(url, body, headers)
        import aiohttp

        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as client:
            async with client.post(url, data=body, headers=headers, allow_redirects=False) as response:
                return response.status

    async def run_once(self, now: datetime, *, limit: int = 50) -> int:
        D = self.model  # noqa: N806
        async with self.store.read_session() as session:
            ids = (await session.execute(sa.select(D.id).where(outbox.due(D, now))
                                         .order_by(D.id).limit(limit))).scalars().all()
        done = 0
        for did in ids:
            done += await self._deliver(did, now)
        return done

    async def _deliver(self, delivery_id: int, now: datetime) -> int:
        D = self.model  # noqa: N806
        async def claim(session):
            n = (await session.execute(sa.update(D).where(
                D.id == delivery_id, D.delivered_at.is_(None), outbox.unclaimed(D, now))
                .values(claimed_until=now + CLAIM).execution_options(synchronize_session=False))).rowcount
            if not n:
                return None
            row = await session.get(D, delivery_id)
            return row.unit_id, row.event, dict(row.payload), row.attempts

        claimed = await self.store.run_write(claim)
        if claimed is None:
            return 0
        unit_id, event, payload, _attempts = claimed
        hook = self.hooks.get(unit_id)
        error = None
        if hook is None:
            error = "no webhook configured for this unit any more"
        else:
            body = json.dumps({**payload, "delivery_id": delivery_id}, ensure_ascii=False).encode()
            headers = {"Content-Type": "application/json", "X-Gateway-Event": event,
                       "X-Gateway-Delivery": str(delivery_id), "X-Gateway-Signature": sign(hook.secret, body)}
            try:
                status = await self._post(hook.url, body, headers)
                if not 200 <= status < 300:
                    error = f"HTTP {status}"
            except Exception as exc:  # the unit's system: any failure is retried, none is ours to raise
                error = f"{type(exc).__name__}: {exc}"[:250]

        async def record(session) -> str:
            return outbox.record_attempt(await session.get(D, delivery_id), error, now)

        result = await self.store.run_write(record)
        if result == "delivered":
            self.counters["delivered"] += 1
            return 1
        self.counters["failed_attempts"] += 1
        if result == "given_up":
            self.counters["given_up"] += 1
        return 0

    async def problems(self, *, limit: int = 100) -> list[dict]:
        """Deliveries not delivered yet that failed at least once, and those given up."""
        D = self.model  # noqa: N806
        async with self.store.read_session() as session:
            rows = await outbox.problems(session, D, limit=limit)
        return [{"id": r.id, "unit_id": r.unit_id, "event": r.event, "ticket_id": getattr(r, "ticket_id", None),
                 "attempts": r.attempts, "next_at": iso(r.next_at), "failed_at": iso(r.failed_at),
                 "last_error": r.last_error, "created_at": iso(r.created_at)} for r in rows]
