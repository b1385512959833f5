"""Reconciliation: make the call rows agree with what Asterisk really did while the gateway was blind.

Theory of operation
-------------------
The call rows are written from FastAGI sessions and AMI events. When AMI is down, or
Asterisk crashes, or the gateway itself was not running, some of those never came:
rows stay open, lack their queue or agent, calls have no row at all, and agents got no
screen pop. A :class:`Reconciler` (one per Asterisk node, built with that node's AMI
client) repairs that. It runs when AMI (re)connects (the client's ``on_connected``
hook: at start and after every outage) and periodically, and each run:

1. reads the calls to check from the database (every open call, and the recent ones),
   *before* asking Asterisk, so a call that starts meanwhile is not taken for gone;
2. asks Asterisk what is up: ``CoreShowChannels`` (live channels, their application,
   queue and bridge), ``CoreStatus`` (when Asterisk started: a restart since a call
   started means the call died with Asterisk);
3. reads the new lines of the CDR file (``gateway.pbx.dialplan.cdr_path``: one JSON
   object a line, remembered by offset; a half-written last line waits for the next run);
4. decides, call by call (pure: :func:`plan`), and applies the repairs:

   * open and not live: closed with its CDR (end time, ``cdr_<disposition>``, queue and
     agent); without a CDR, ``asterisk_crash`` if Asterisk started after the call did,
     else ``lost`` once it was missing on two runs in a row;
   * live: queue and agent filled from the channel (the queue it is in, the agent's
     channel bridged to it); an agent found that way had no screen pop, so a synthetic
     ``AgentConnect`` goes through the same AMI event handlers as a real one;
   * any recent call whose draft ticket has no recording gets ``<uniqueid>.wav`` from the
     recordings directory if it is there with some audio;
   * a CDR of an inbound line (``did-<number>``) with no row at all (the gateway was
     down, or the fail-safe dialplan took the call: its ``CDR(userfield)`` says
     ``failsafe;queue=<q>;path=<path>;agi=<AGISTATUS>``) becomes a row and a draft
     ticket marked as made by reconciliation.

Every repair only fills what is missing (``TicketStore.repair_call``), so a second run
changes nothing more. Repairs go straight to the store.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Awaitable, Callable

from gateway.calls.handler import caller_id
from gateway.calls.outbound import is_outbound_cdr
from gateway.errors import GatewayError
from gateway.pbx.ami_events import AgentConnect, AmiEvent, Hangup, agent_id_of

log = logging.getLogger(__name__)

CAUSE_CRASH = "asterisk_crash"  # Asterisk restarted after the call started and kept no record of its end
CAUSE_LOST = "lost"  # gone from Asterisk, no record of how it ended, Asterisk did not restart
CDR_GRACE_S = 10.0  # a CDR this fresh is left to its own Hangup event while AMI is up
WAV_HEADER = 44
MIN_RECORDING_BYTES = WAV_HEADER + 1600  # at least 100 ms of 8 kHz 16-bit audio
MAX_CDR_LINE = 64 * 1024
POP_ENDED_WITHIN_S = 15 * 60  # a call answered while blind and already over still pops, if this recent


# -- pure parts -------------------------------------------------------------------------------
@dataclass
class CdrCall:
    """The CDR records of one channel (uniqueid), merged."""

    uniqueid: str
    linkedid: str = ""
    channel: str = ""
    src: str = ""
    dst: str = ""
    dcontext: str = ""
    start: float | None = None
    answer: float | None = None
    end: float | None = None
    disposition: str = ""
    queue: str = ""
    agent_channel: str = ""
    userfield: str = ""

    def add(self, rec: dict) -> None:
        start, end = _num(rec.get("start")), _num(rec.get("end"))
        if start and (self.start is None or start < self.start):
            self.start = start
            self.dcontext = str(rec.get("dcontext") or self.dcontext)
            self.src = str(rec.get("src") or self.src)
            self.dst = str(rec.get("dst") or self.dst)
            self.channel = str(rec.get("channel") or self.channel)
        if end and (self.end is None or end >= self.end):
            self.end = end
            self.disposition = str(rec.get("disposition") or self.disposition)
        self.linkedid = self.linkedid or str(rec.get("linkedid") or "")
        self.channel = self.channel or str(rec.get("channel") or "")
        self.dcontext = self.dcontext or str(rec.get("dcontext") or "")
        self.src = self.src or str(rec.get("src") or "")
        if str(rec.get("lastapp") or "") == "Queue":
            self.queue = str(rec.get("lastdata") or "").split(",", 1)[0] or self.queue
        dst = str(rec.get("dstchannel") or "")
        if dst:
            self.agent_channel = dst
        if rec.get("userfield"):
            self.userfield = str(rec["userfield"])

    @property
    def failsafe(self) -> dict[str, str]:
        return parse_userfield(self.userfield)

    @property
    def agent(self) -> str:
        return agent_of_channel(self.agent_channel)

    @property
    def line(self) -> str:
        """The hotline number called: the ``did-<number>`` context, or the number dialled into
        ``inbound`` (where every call enters); "" for other channels (agents, the simulator)."""
        if self.dcontext.startswith("did-"):
            return self.dcontext[4:]
        if self.dcontext == "inbound" and self.dst[:1].isdigit() and self.dst.isalnum():
            return self.dst
        return ""


def _num(value) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if out > 0 else None


def parse_userfield(text: str) -> dict[str, str]:
    """``failsafe;queue=q-general;path=type_menu:4;agi=FAILURE`` -> {"failsafe": "1", "queue": ..., ...};
    {} for anything else."""
    parts = [p for p in (text or "").split(";") if p]
    if not parts or parts[0] != "failsafe":
        return {}
    out = {"failsafe": "1"}
    for part in parts[1:]:
        key, sep, value = part.partition("=")
        if sep and key in ("queue", "path", "agi"):
            out[key] = value[:200]
    return out


def agent_of_channel(channel: str) -> str:
    """The agent id of an agent's channel (``Local/8001@gw-agents-00000001;1`` -> ``8001``,
    ``PJSIP/8001-0000002a`` -> ``8001``); "" for none."""
    if not channel:
        return ""
    base = channel.split(";", 1)[0]
    if "@" in base:
        return agent_id_of(base)
    tail = base.rsplit("/", 1)[-1].rsplit("-", 1)[0]
    return agent_id_of(f"x/{tail}")


class CdrReader:
    """Reads a CDR file incrementally: complete new lines only, the offset remembered; a file that
    shrank (rotated) is read again from its start."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.offset = 0
        self.bad_lines = 0

    def read_new(self) -> list[dict]:
        """Blocking (run it in a thread)."""
        if self.path is None:
            return []
        try:
            size = os.path.getsize(self.path)
        except OSError:
            return []
        if size < self.offset:
            self.offset = 0
        out: list[dict] = []
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            data = fh.read(size - self.offset)
        end = data.rfind(b"\n")
        if end < 0:
            return []  # nothing, or a line still being written
        for raw in data[: end + 1].splitlines():
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw[:MAX_CDR_LINE])
            except ValueError:
                self.bad_lines += 1
                continue
            if isinstance(rec, dict) and rec.get("uniqueid"):
                out.append(rec)
        self.offset += end + 1
        return out


@dataclass(frozen=True)
class LiveChannel:
    uniqueid: str
    linkedid: str
    channel: str
    application: str
    data: str
    bridge: str

    @property
    def queue(self) -> str:
        return self.data.split(",", 1)[0] if self.application == "Queue" else ""


def live_channels(messages: list[dict]) -> dict[str, LiveChannel]:
    """``CoreShowChannels``' answer (a list of messages) -> live channels by uniqueid."""
    out = {}
    for m in messages:
        h = {str(k).lower(): str(v) for k, v in dict(m).items()}
        if h.get("event") != "CoreShowChannel" or not h.get("uniqueid"):
            continue
        out[h["uniqueid"]] = LiveChannel(h["uniqueid"], h.get("linkedid", ""), h.get("channel", ""),
                                         h.get("application", ""), h.get("applicationdata", ""),
                                         h.get("bridgeid", ""))
    return out


def bridged_agent(chan: LiveChannel, channels: dict[str, LiveChannel]) -> LiveChannel | None:
    """The agent's channel in the same bridge as the caller's, if any."""
    if not chan.bridge:
        return None
    for other in channels.values():
        if other.uniqueid != chan.uniqueid and other.bridge == chan.bridge and agent_of_channel(other.channel):
            return other
    return None


def asterisk_started_at(core_status: dict) -> datetime | None:
    """``CoreStatus``' CoreStartupDate/Time (Asterisk's local time, taken as this host's: the
    gateway runs beside Asterisk) as an aware UTC datetime."""
    date, clock = core_status.get("CoreStartupDate"), core_status.get("CoreStartupTime")
    if not date or not clock:
        return None
    try:
        local = time.strptime(f"{date} {clock}", "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
    return datetime.fromtimestamp(time.mktime(local), timezone.utc)


def _utc(epoch: float | None) -> datetime | None:
    return datetime.fromtimestamp(epoch, timezone.utc) if epoch else None


@dataclass
class Repair:
    uniqueid: str
    ended_at: datetime | None = None
    cause_txt: str | None = None
    queue: str | None = None
    agent: str | None = None
    pop: AgentConnect | None = None  # for a call an agent answered while the gateway was blind
    note: dict[str, Any] = field(default_factory=dict)


def plan(calls: list[dict], channels: dict[str, LiveChannel], cdrs: dict[str, CdrCall], *,
         started_at: datetime | None, restarted: bool, suspects: set[str], now: datetime,
         ami_up_for: float) -> tuple[list[Repair], set[str]]:
    """What to repair (pure). ``suspects``: the calls found gone without a trace on the last run
    (a second such run closes them as lost); returns the repairs and the new suspects."""
    repairs, new_suspects = [], set()
    for call in calls:
        uid = call["uniqueid"]
        open_ = call["ended_at"] is None
        live = channels.get(uid)
        cdr = cdrs.get(uid)
        r = Repair(uid)
        if live is not None:
            if not call["queue"] and live.queue:
                r.queue = live.queue
            agent = bridged_agent(live, channels)
            if agent is not None and not call["agent"]:
                r.agent = agent_of_channel(agent.channel)
                r.pop = AgentConnect("AgentConnect", uid, live.channel, live.queue or call["queue"] or "", "",
                                     agent.channel, None, agent.uniqueid, live.linkedid)
        elif cdr is not None and cdr.end:
            fresh = (now - _utc(cdr.end)).total_seconds() < CDR_GRACE_S and ami_up_for > CDR_GRACE_S
            if open_ and not fresh:
                r.ended_at = _utc(cdr.end)
                r.cause_txt = f"cdr_{cdr.disposition.lower().replace(' ', '_')}" if cdr.disposition else "cdr"
                r.note = {"source": "cdr", "disposition": cdr.disposition}
            if not call["queue"]:
                r.queue = cdr.queue or cdr.failsafe.get("queue") or None
            if not call["agent"] and cdr.agent:
                r.agent = cdr.agent
                if (now - _utc(cdr.end)).total_seconds() < POP_ENDED_WITHIN_S:
                    # Answered and over while the gateway was blind: the agent still gets the
                    # ticket to complete.
                    r.pop = AgentConnect("AgentConnect", uid, cdr.channel, r.queue or call["queue"] or "", "",
                                         cdr.agent_channel, None, "", cdr.linkedid)
        elif open_:
            call_start = call["started_at"]
            if started_at is not None and call_start is not None and started_at > call_start:
                r.ended_at, r.cause_txt = started_at, CAUSE_CRASH
                r.note = {"source": "corestatus", "asterisk_started_at": started_at.isoformat()}
            elif restarted:
                r.ended_at, r.cause_txt = now, CAUSE_CRASH
                r.note = {"source": "restart seen on reconnect"}
            elif uid in suspects:
                r.ended_at, r.cause_txt = now, CAUSE_LOST
                r.note = {"source": "missing twice"}
            else:
                new_suspects.add(uid)
        if r.ended_at or r.queue or r.agent:
            repairs.append(r)
    return repairs, new_suspects


# -- the service ----------------------------------------------------------------------------------
class Reconciler:
    """Reconciliation for one Asterisk node (see the module's docstring)."""

    def __init__(self, *, ami, store, node: str = "asterisk", cdr_path: Path | None = None,
                 recordings_dir: Path | None = None, clock: Callable[[], datetime] | None = None,
                 dispatch: Callable[[AmiEvent], Awaitable[None]] | None = None,
                 lines: Callable[[str], Any] | None = None, lookback: timedelta = timedelta(hours=24),
                 interval: float = 60.0, owns: Callable[[str], bool] | None = None,
                 pending: Callable[[str], bool] | None = None,
                 outbound: Callable[[list[dict]], Awaitable[int]] | None = None) -> None:
        self.ami, self.store, self.node = ami, store, node
        # The CDRs of the gateway's own calls (userfield "outbound;..."), as they are read: they
        # close the outbound_calls rows a restart or an AMI outage left open (gateway.calls.outbound).
        self.outbound = outbound
        # With several nodes a call belongs to the node whose systemname prefixes its id; a
        # call whose writes still wait in the journal is left alone until they are applied.
        self.owns = owns or (lambda uniqueid: True)
        self.pending = pending or (lambda uniqueid: False)
        self.cdr = CdrReader(cdr_path)
        self.cdrs: dict[str, CdrCall] = {}
        self.recordings_dir = recordings_dir
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.dispatch = dispatch
        self.lines = lines
        self.lookback = lookback
        self.interval = interval
        self._lock = asyncio.Lock()
        self._suspects: set[str] = set()
        self._asterisk_start: str | None = None  # CoreStartupDate+Time seen on the last run
        self._task: asyncio.Task | None = None
        self._runs: set[asyncio.Task] = set()
        self.runs = 0
        self.last: dict[str, Any] = {}
        self.totals = {"closed": 0, "crashed": 0, "lost": 0, "completed": 0, "created": 0, "recordings": 0,
                       "pops": 0, "failures": 0}

    # -- wiring ------------------------------------------------------------------------------
    def attach(self) -> None:
        """Run on every AMI login (the first one included)."""
        self.ami.on_connected(lambda: self.trigger("ami-connected"))

    def trigger(self, reason: str) -> asyncio.Task:
        task = asyncio.ensure_future(self.run(reason))
        self._runs.add(task)
        task.add_done_callback(self._runs.discard)
        return task

    async def start(self) -> None:
        if self.interval > 0 and self._task is None:
            self._task = asyncio.create_task(self._periodic(), name=f"reconcile-{self.node}")

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._runs) if t is not None]
        self._task = None
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)

    async def _periodic(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            if not self.ami.connected:
                continue
            try:
                await self.run("periodic")
            except Exception:  # noqa: BLE001 - e.g. the database: the next run tries again
                self.totals["failures"] += 1
                log.exception("reconcile %s (periodic) failed", self.node)

    def health(self) -> dict:
        return {"node": self.node, "runs": self.runs, "last": self.last, "totals": dict(self.totals)}

    # -- one run -----------------------------------------------------------------------------
    async def run(self, reason: str = "manual") -> dict:
        async with self._lock:
            began = time.monotonic()
            try:
                counts = await self._run(reason)
            except (GatewayError, OSError) as exc:
                self.totals["failures"] += 1
                self.last = {"at": self.clock().isoformat(), "reason": reason, "error": str(exc)[:200]}
                log.warning("reconcile %s (%s) failed: %s", self.node, reason, exc)
                return {}
            self.runs += 1
            for key, value in counts.items():
                self.totals[key] = self.totals.get(key, 0) + value
            self.last = {"at": self.clock().isoformat(), "reason": reason,
                         "seconds": round(time.monotonic() - began, 3), **counts}
            repaired = any(v for k, v in counts.items() if k not in ("checked", "live"))
            level = logging.WARNING if repaired else logging.INFO
            log.log(level, "reconcile %s (%s): %s", self.node, reason,
                    ", ".join(f"{k} {v}" for k, v in counts.items()))
            return counts

    async def _run(self, reason: str) -> dict:
        now = self.clock()
        calls = [c for c in await self.store.calls_to_reconcile(since=now - self.lookback)
                 if self.owns(c["uniqueid"]) and not self.pending(c["uniqueid"])]
        status = dict(await self.ami.action({"Action": "CoreStatus"}))
        channels = live_channels(list(await self.ami.action({"Action": "CoreShowChannels"}, as_list=True,
                                                            timeout=max(self.ami.action_timeout, 10.0))))
        records = await asyncio.to_thread(self.cdr.read_new)
        for rec in records:
            self.cdrs.setdefault(str(rec["uniqueid"]), CdrCall(str(rec["uniqueid"]))).add(rec)
        outbound = [rec for rec in records if is_outbound_cdr(rec)]
        self._prune(now)
        started_at = asterisk_started_at(status)
        startup = f"{status.get('CoreStartupDate')} {status.get('CoreStartupTime')}"
        restarted = self._asterisk_start is not None and startup != self._asterisk_start
        self._asterisk_start = startup
        up_for = 0.0
        if getattr(self.ami, "connected_at", None) is not None:
            up_for = asyncio.get_running_loop().time() - self.ami.connected_at
        repairs, self._suspects = plan(calls, channels, self.cdrs, started_at=started_at, restarted=restarted,
                                       suspects=self._suspects, now=now, ami_up_for=up_for)
        counts = {"checked": len(calls), "live": len(channels), "closed": 0, "crashed": 0, "lost": 0,
                  "completed": 0, "created": 0, "recordings": 0, "pops": 0}
        if self.outbound is not None:
            counts["outbound"] = await self.outbound(outbound) if outbound else 0
        known = {c["uniqueid"] for c in calls}
        by_uid = {c["uniqueid"]: c for c in calls}
        for r in repairs:
            changed = await self.store.repair_call(
                r.uniqueid, ended_at=r.ended_at, hangup_cause_txt=r.cause_txt, queue=r.queue, agent=r.agent,
                note={"node": self.node, "reason": reason, "cause": r.cause_txt, **r.note})
            if "queue" in changed or "agent" in changed:
                counts["completed"] += 1
            if r.pop is not None and "agent" in changed:
                await self._notify(r.pop)  # the same handlers as a real AgentConnect: row, board, desk pop
                counts["pops"] += 1
            if "ended" in changed:
                counts["closed"] += 1
                counts["crashed"] += r.cause_txt == CAUSE_CRASH
                counts["lost"] += r.cause_txt == CAUSE_LOST
                log.warning("call %s closed by reconciliation: %s", r.uniqueid, r.cause_txt)
                await self._notify(Hangup("Hangup", r.uniqueid, by_uid[r.uniqueid]["channel"], None, r.cause_txt or ""))
        counts["recordings"] = await self._attach_recordings(calls, reason)
        checked = set(known)
        counts["created"] = await self._create_missing(known, now, reason)
        ended = {c["uniqueid"] for c in calls if c["ended_at"] is not None} | {r.uniqueid for r in repairs if r.ended_at}
        self._settle(ended | (known - checked), now)
        return counts

    async def _notify(self, event: AmiEvent) -> None:
        if self.dispatch is not None:
            await self.dispatch(event)

    def _settle(self, done: set[str], now: datetime) -> None:
        """Forget the CDRs of channels reconciliation has no more use for, once past the grace
        period: the ended calls it checked (or created, or found not ours) and every channel that
        is no hotline call (agents' legs, Local channels, the simulator: never a row). Kept for
        the 24 h look-back instead, they grew the gateway by ~1 KB per channel under steady load
        (the soak, bench/README.md 2026-12-02)."""
        cutoff = now.timestamp() - CDR_GRACE_S
        for uid in [u for u, c in self.cdrs.items() if c.end and c.end < cutoff and (u in done or not c.line)]:
            del self.cdrs[uid]

    def _prune(self, now: datetime) -> None:
        oldest = (now - self.lookback).timestamp()
        for uid in [u for u, c in self.cdrs.items() if (c.end or c.start or 0) < oldest]:
            del self.cdrs[uid]

    async def _attach_recordings(self, calls: list[dict], reason: str) -> int:
        if self.recordings_dir is None:
            return 0
        wanted = [c for c in calls if c["ticket_id"] and c["ticket_status"] == "draft" and not c["recording_path"]]
        if not wanted:
            return 0
        found = await asyncio.to_thread(_find_recordings, self.recordings_dir, [c["uniqueid"] for c in wanted])
        attached = 0
        for uid, (path, duration_ms) in found.items():
            changed = await self.store.repair_call(uid, recording_path=path, recording_duration_ms=duration_ms,
                                                   note={"node": self.node, "reason": reason, "source": "disk"})
            if "recording" in changed:
                attached += 1
                log.warning("call %s: recording found on disk attached to its ticket (%d ms)", uid, duration_ms)
        return attached

    async def _create_missing(self, known: set[str], now: datetime, reason: str) -> int:
        created = 0
        for cdr in list(self.cdrs.values()):
            if cdr.uniqueid in known or not cdr.line or not cdr.start or self.pending(cdr.uniqueid):
                continue
            if cdr.end and (now - _utc(cdr.end)).total_seconds() < CDR_GRACE_S:
                continue  # its row may still be on its way (the journal)
            line = self.lines(cdr.line) if self.lines is not None else None
            if self.lines is not None and line is None:
                known.add(cdr.uniqueid)  # not a line of ours: Asterisk hung up, there was no IVR
                continue
            number, raw = caller_id(cdr.src)
            fs = cdr.failsafe
            path = [{"node": "failsafe", **{k: v for k, v in fs.items() if k != "failsafe"}}] if fs else []
            ticket_id = await self.store.create_reconciled_call(
                uniqueid=cdr.uniqueid, channel=cdr.channel[:128], caller_number=number, caller_id_raw=raw,
                dialled_number=cdr.line, line_number=cdr.line,
                line_name=getattr(line, "name", "") or cdr.line, merge_mode=getattr(line, "mode", "") or "unknown",
                department=getattr(line, "department", None), started_at=_utc(cdr.start),
                ended_at=_utc(cdr.end), hangup_cause_txt=(f"cdr_{cdr.disposition.lower().replace(' ', '_')}"
                                                           if cdr.end and cdr.disposition else None),
                queue=(cdr.queue or fs.get("queue") or None), agent=cdr.agent or None, menu_path=path,
                note={"source": "cdr", "node": self.node, "reason": reason, "failsafe": bool(fs),
                      "agi": fs.get("agi")})
            if ticket_id is not None:
                created += 1
                log.warning("call %s had no row: created by reconciliation (ticket %s%s)", cdr.uniqueid, ticket_id,
                            ", fail-safe" if fs else "")
            known.add(cdr.uniqueid)
        return created


def _find_recordings(directory: Path, uniqueids: list[str]) -> dict[str, tuple[str, int]]:
    """``<uniqueid>.wav`` files in ``directory`` with some audio: uniqueid -> (path, duration ms). Blocking."""
    out = {}
    try:
        root = directory.resolve()
    except OSError:
        return out
    for uid in uniqueids:
        if not uid or "/" in uid or uid.startswith("."):
            continue
        path = root / f"{uid}.wav"
        try:
            if path.resolve().parent != root or not path.is_file():
                continue
            size = path.stat().st_size
        except OSError:
            continue
        if size < MIN_RECORDING_BYTES:
            continue
        out[uid] = (str(path), (size - WAV_HEADER) // 16)  # 8 kHz, 16-bit mono
    return out
