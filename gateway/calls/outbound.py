"""The gateway's own calls to citizens, on the calls side: the FastAGI route by purpose and the rows.

How a feature places a call and runs it (the callback, the 回访 follow-up)::

    from gateway.calls.plugin import OUTBOUND, OUTBOUND_ROUTES

    def setup(app, deps):                      # a feature set up after ``calls``
        async def run(session, channel, ref):  # the answered call, on its FastAGI session
            key = await channel.collect_digits("followup-q1", max_digits=1, timeout=5)
            ...                                # then channel.transfer_to_queue(q) or channel.hangup()
        app[OUTBOUND_ROUTES].register("followup", run)
        outbound = app[OUTBOUND]               # gateway.pbx.outbound.Outbound
        # later, e.g. in a background task:
        result = await outbound.dial(number, purpose="followup", ref=ticket_no, timeout_s=30)

``dial`` returns once the citizen answered (or not); the handler runs on the FastAGI session
Asterisk opens from ``[gw-outbound]`` (``session.env.uniqueid == result.uniqueid``). Asterisk
starts that session as it reports the answer, so the handler may start *before* ``dial``
returns: find what the call is about from ``ref`` (kept in the database before dialling),
not from state set after ``dial`` returns.
``channel`` is an :class:`gateway.pbx.fastagi.AgiChannel` (prompts, keys, speech, recording,
``transfer_to_queue`` (the channel variable ``QUEUE_PRIO`` may be set by ``dial(variables=)``),
``hangup``). When the handler returns without either, the call is hung up. An unknown purpose
or a handler that raises is logged and the call hung up politely; the server goes on.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timezone
from typing import Awaitable, Callable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.errors import ChannelHangup
from gateway.masking import mask_text
from gateway.ticketing.models import OutboundCall

log = logging.getLogger(__name__)

OUTBOUND_SCRIPT = "outbound"  # AGI(agi://<gateway>/outbound,<purpose>,<ref>)
Handler = Callable[..., Awaitable[None]]  # handler(session, channel: AgiChannel, ref: str)
_PURPOSE = re.compile(r"[a-z][a-z0-9_-]{0,31}")


class OutboundRoutes:
    """Purpose -> handler of the answered call's FastAGI session."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}
        self.sessions = 0
        self.unknown = 0
        self.failed = 0

    def register(self, purpose: str, handler: Handler) -> None:
        """``await handler(session, channel, ref)`` runs each answered call of ``purpose``."""
        if not _PURPOSE.fullmatch(purpose or ""):
            raise ValueError(f"purpose {purpose!r}: 1-32 lower-case letters, digits, '_' or '-', a letter first")
        if purpose in self._handlers:
            raise ValueError(f"outbound purpose {purpose!r} is already registered")
        if not callable(handler):
            raise TypeError("an outbound handler must be an async callable")
        self._handlers[purpose] = handler

    def handler(self, purpose: str) -> Handler | None:
        return self._handlers.get(purpose)

    @property
    def purposes(self) -> tuple[str, ...]:
        return tuple(self._handlers)

    def counters(self) -> dict[str, int]:
        return {"sessions": self.sessions, "unknown_purpose": self.unknown, "handler_errors": self.failed}

    async def run(self, session, channel) -> None:
        """One outbound FastAGI session: the purpose's handler, then a polite end whatever happened."""
        env = session.env
        args = env.args
        purpose, ref = (args[0] if args else ""), (args[1] if len(args) > 1 else "")
        self.sessions += 1
        handler = self._handlers.get(purpose)
        if handler is None:
            self.unknown += 1
            log.warning("outbound call %s: no route for purpose %r; hanging up", env.uniqueid,
                        mask_text(purpose)[:40])
            await _end(channel)
            return
        try:
            await channel.remember({"GW_IVR": "outbound"})  # a gateway took the call: no failover to another
            await handler(session, channel, ref)
        except ChannelHangup:
            log.info("outbound call %s (%s, ref %s): the citizen hung up", env.uniqueid, purpose, mask_text(ref))
            return
        except Exception as exc:  # noqa: BLE001 - one failing purpose ends only its own call
            self.failed += 1
            log.error("outbound call %s (%s, ref %s): handler failed: %s", env.uniqueid, purpose, mask_text(ref),
                      mask_text(repr(exc)))
            await _end(channel)
            return
        if not channel.finished:
            await _end(channel)


async def _end(channel) -> None:
    try:
        await channel.hangup()
    except Exception as exc:  # noqa: BLE001 - the channel may be gone already
        log.debug("outbound hang-up: %s", mask_text(repr(exc)))


class OutboundSessions:
    """The FastAGI server's handler: ``outbound`` sessions to the routes, every other to the IVR."""

    def __init__(self, ivr, routes: OutboundRoutes, channel_factory: Callable) -> None:
        self.ivr = ivr
        self.routes = routes
        self.channel_factory = channel_factory

    async def __call__(self, session) -> None:
        if session.env.network_script == OUTBOUND_SCRIPT:
            await self.routes.run(session, self.channel_factory(session))
        else:
            await self.ivr(session)


class OutboundCalls:
    """The ``outbound_calls`` rows (gateway.pbx.outbound.OutboundRecorder) in the gateway's database."""

    def __init__(self, store) -> None:
        self.store = store  # gateway.ticketing.store.TicketStore (run_write, read_session)

    async def started(self, *, uniqueid: str, purpose: str, ref: str, number: str, node: str | None,
                      started_at: datetime) -> None:
        async def work(session: AsyncSession) -> None:
            session.add(OutboundCall(uniqueid=uniqueid, purpose=purpose, ref=ref, number=number, node=node,
                                     started_at=started_at))

        await self.store.run_write(work)

    async def finished(self, uniqueid: str, *, outcome: str, reason: str, answered_at: datetime | None,
                       ended_at: datetime | None) -> None:
        async def work(session: AsyncSession) -> None:
            values: dict = {"outcome": outcome, "reason": reason[:200]}
            if answered_at is not None:
                values["answered_at"] = answered_at
            await session.execute(sa.update(OutboundCall).where(OutboundCall.uniqueid == uniqueid).values(**values))
            if ended_at is not None:
                await session.execute(sa.update(OutboundCall).where(
                    OutboundCall.uniqueid == uniqueid, OutboundCall.ended_at.is_(None)).values(ended_at=ended_at))

        await self.store.run_write(work)

    async def hung_up(self, uniqueid: str, *, ended_at: datetime) -> None:
        async def work(session: AsyncSession) -> None:
            await session.execute(sa.update(OutboundCall).where(
                OutboundCall.uniqueid == uniqueid, OutboundCall.ended_at.is_(None)).values(ended_at=ended_at))

        await self.store.run_write(work)

    async def close_from_cdr(self, records: list[dict]) -> int:
        """Rows still open (no end, or no outcome: the gateway stopped while dialling) completed from
        Asterisk's CDRs (:func:`cdr_endings`); returns how many rows changed."""
        endings = cdr_endings(records)
        if not endings:
            return 0

        async def work(session: AsyncSession) -> int:
            rows = (await session.execute(sa.select(OutboundCall).where(
                OutboundCall.uniqueid.in_(list(endings)),
                sa.or_(OutboundCall.ended_at.is_(None), OutboundCall.outcome.is_(None))))).scalars().all()
            for row in rows:
                seen = endings[row.uniqueid]
                if row.outcome is None:
                    row.outcome = seen["outcome"] or "failed"
                    row.reason = "from Asterisk's CDR (the gateway did not see the answer)"
                    row.answered_at = row.answered_at or seen["answered_at"]
                row.ended_at = row.ended_at or seen["ended_at"]
            return len(rows)

        changed = await self.store.run_write(work)
        if changed:
            log.warning("outbound: %d call row(s) completed from Asterisk's CDRs", changed)
        return changed

    async def get(self, uniqueid: str) -> dict | None:
        async with self.store.read_session() as session:
            row = (await session.execute(sa.select(OutboundCall).where(OutboundCall.uniqueid == uniqueid))).scalar()
            return _row(row) if row is not None else None

    async def list(self, *, ref: str | None = None, purpose: str | None = None, limit: int = 100) -> list[dict]:
        query = sa.select(OutboundCall).order_by(OutboundCall.id.desc()).limit(limit)
        if ref is not None:
            query = query.where(OutboundCall.ref == ref)
        if purpose is not None:
            query = query.where(OutboundCall.purpose == purpose)
        async with self.store.read_session() as session:
            return [_row(r) for r in (await session.execute(query)).scalars()]


CDR_OUTCOME = {"ANSWERED": "answered", "NO ANSWER": "no_answer", "BUSY": "busy", "FAILED": "failed",
               "CONGESTION": "failed"}


_OUR_ID = re.compile(r"(?:[A-Za-z0-9_.-]+-)?out-[a-z]{16}")  # gateway.pbx.outbound.new_uniqueid


def is_outbound_cdr(rec: dict) -> bool:
    """A CDR of a call the gateway placed: its userfield (``[gw-outbound]`` ran), or our channel id
    (an attempt that was never answered never ran the dialplan)."""
    return (str(rec.get("userfield") or "").startswith("outbound")
            or bool(_OUR_ID.fullmatch(str(rec.get("uniqueid") or ""))))


def cdr_endings(records: list[dict]) -> dict[str, dict]:
    """What the CDRs of outbound calls (``userfield`` ``outbound;...``) say, by uniqueid: ``ended_at``,
    ``answered_at`` and ``outcome`` (from the disposition); for rows a restart or an AMI outage
    left open. Records without an end are skipped."""
    out: dict[str, dict] = {}
    for rec in records:
        uid = str(rec.get("uniqueid") or "")
        end, answer = _epoch(rec.get("end")), _epoch(rec.get("answer"))
        if not uid or end is None:
            continue
        known = out.setdefault(uid, {"ended_at": end, "answered_at": answer, "outcome": None})
        known["ended_at"] = max(known["ended_at"], end)
        if answer is not None:
            known["answered_at"] = min(known["answered_at"] or answer, answer)
        disposition = str(rec.get("disposition") or "").upper()
        if disposition in CDR_OUTCOME and known["outcome"] != "answered":
            known["outcome"] = CDR_OUTCOME[disposition]
    return out


def _epoch(value) -> datetime | None:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return datetime.fromtimestamp(seconds, timezone.utc) if seconds > 0 else None


def _row(row: OutboundCall) -> dict:
    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value is not None else None

    return {"uniqueid": row.uniqueid, "purpose": row.purpose, "ref": row.ref, "number": row.number,
            "node": row.node, "outcome": row.outcome, "reason": row.reason, "started_at": iso(row.started_at),
            "answered_at": iso(row.answered_at), "ended_at": iso(row.ended_at)}
