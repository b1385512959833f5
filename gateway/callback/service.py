"""The callback service: the IVR's figures and requests, the dispatcher, the answered call.

Theory of operation
-------------------
* **Offer** (the IVR, :meth:`CallbackService.expected_wait`): one AMI ``QueueStatus`` of the
  queue on every connected Asterisk node, merged, plus the callbacks of that queue still open
  (they are ahead of a newcomer too) -> :func:`gateway.callback.estimate.expected_wait`. No AMI:
  no figure, no offer (the caller simply waits).
* **Keep the place** (:meth:`request`): a ``waiting`` row, ``requested_at`` = now (when the caller
  would have joined the queue). The row is the only state: a restart loses nothing.
* **Dispatch** (:meth:`check`): for each queue with an open callback, on a member becoming free
  (AMI ``QueueMemberStatus`` / ``QueueMemberPause`` / ``AgentComplete`` / ``QueueCallerLeave``)
  and every ``GATEWAY_CALLBACK_CHECK_SECONDS``: read the queue, apply
  :func:`gateway.callback.policy.due` (free member, nobody waiting who joined before the place,
  older callbacks first), claim the row (one instance wins) and place the call with
  ``Outbound.dial(purpose="callback", ref=<id>, variables={"QUEUE_PRIO": …})`` in a task.
* **Answered** (:meth:`answered_call`, the ``callback`` FastAGI route): the notice, then the
  queue with the high priority; the row notes the outbound uniqueid, AgentConnect of that
  uniqueid makes it ``done`` (the desk pop shows the original ticket, flagged as a callback),
  a hang-up before an agent counts as an unanswered attempt.
* **Not answered**: :class:`gateway.callback.policy.RetryPolicy` (waiting again after the
  interval, or ``no_answer``/``failed`` with the reason); every move is on the ticket's audit trail.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timedelta
from typing import Callable

from gateway.callback.estimate import QueueSnapshot, expected_wait, merge, parse_queue_status
from gateway.callback.policy import Pending, RetryPolicy, due
from gateway.callback.store import CallbackStore
from gateway.errors import GatewayError
from gateway.masking import mask_number, mask_text
from gateway.pbx.ami_events import AgentConnect, AmiEvent, Hangup, agent_id_of

log = logging.getLogger(__name__)
PURPOSE = "callback"
# AMI events after which a member of the queue may be free (or about to be).
RECHECK_AFTER_S = (0.3, 1.0)  # after a "member free" event: checks again, the member's state settling
FREEING_EVENTS = {"QueueMemberStatus", "QueueMemberPause", "AgentComplete", "QueueCallerLeave",
                  "QueueMemberAdded", "QueueCallerAbandon"}


def _parse_iso(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def pending_of(row: dict) -> Pending:
    return Pending(row["id"], row["queue"], _parse_iso(row["requested_at"]), row["status"], _parse_iso(row["next_at"]))


class CallbackService:
    def __init__(self, *, store: CallbackStore, ami, ami_nodes: dict, clock: Callable[[], datetime], instance: str,
                 policy: RetryPolicy, over_seconds: float, talk_seconds: float, ring_seconds: float,
                 priority: int, check_seconds: float, outbound=None, notice_key: Callable[[], str | None] = lambda: None,
                 status_timeout: float = 3.0) -> None:
        self.store = store
        self.ami = ami
        self.ami_nodes = ami_nodes or {}
        self.clock = clock
        self.instance = instance
        self.policy = policy
        self.over_seconds = over_seconds
        self.talk_seconds = talk_seconds
        self.ring_seconds = ring_seconds
        self.priority = priority
        self.check_seconds = check_seconds
        self.outbound = outbound  # gateway.pbx.outbound.Outbound (None: callbacks are kept, not placed)
        self.notice_key = notice_key
        self.status_timeout = status_timeout
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._placing: dict[int, asyncio.Task] = {}
        self._ours: dict[str, int] = {}  # outbound uniqueid -> callback id, for calls placed here
        self.counters = {"offers_estimated": 0, "requested": 0, "placed": 0, "answered": 0, "done": 0,
                         "not_answered": 0, "claims_lost": 0, "checks": 0}
        # seconds from the "member free" event that triggered a check to the Originate: the bench reads it
        self.placed_after: list[float] = []
        self._freed_at: dict[str, float] = {}
        self._waiting: dict[str, int] = {}  # queue -> callbacks waiting, at the last check
        self._event_locks: dict[str, asyncio.Lock] = {}  # outbound uniqueid -> its events, in order

    # -- the IVR's side ------------------------------------------------------------------------
    async def queue_snapshot(self, queue: str) -> QueueSnapshot | None:
        """The queue as every connected node sees it now (None: no node answered)."""
        clients = [c for c in (self.ami_nodes.values() if self.ami_nodes else [self.ami]) if c.connected]
        snaps = []
        for client in clients:
            try:
                messages = await client.action({"Action": "QueueStatus", "Queue": queue}, as_list=True,
                                               timeout=self.status_timeout)
            except GatewayError as exc:
                log.info("callback: QueueStatus %s failed: %s", queue, mask_text(str(exc)))
                continue
            snap = parse_queue_status([dict(m.items()) if hasattr(m, "items") else m for m in messages]).get(queue)
            if snap is not None:
                snaps.append(snap)
        return merge(snaps)

    async def expected_wait(self, state, queue: str) -> tuple[float | None, float] | None:
        snapshot = await self.queue_snapshot(queue)
        if snapshot is None:
            return None
        # the callbacks keeping a place in this queue, as of the dispatcher's last look (no database
        # read on the call path)
        ahead = self._waiting.get(queue, 0)
        estimate = expected_wait(snapshot, callbacks_ahead=ahead, default_talk_s=self.talk_seconds)
        self.counters["offers_estimated"] += 1
        return estimate.seconds, self.over_seconds

    async def callback_requested(self, state, queue: str, number: str, source: str) -> None:
        try:
            row = await self.store.request(call_uniqueid=state.uniqueid, queue=queue, number=number,
                                           number_source=source, requested_at=self.clock())
        except Exception as exc:  # noqa: BLE001 - the caller then waits in the queue
            raise GatewayError(f"callback not kept: {type(exc).__name__}") from exc
        self.counters["requested"] += 1
        self._waiting[queue] = self._waiting.get(queue, 0) + 1
        log.info("callback %s: call %s keeps its place in %s, number %s (%s)", row["id"], state.uniqueid, queue,
                 mask_number(number), source)
        self.kick()

    # -- events -------------------------------------------------------------------------------
    def kick(self, queue: str | None = None) -> None:
        if queue is not None:
            self._freed_at.setdefault(queue, time.monotonic())
        self._wake.set()

    def on_raw(self, headers: dict) -> None:
        """Raw AMI events: a member of a queue may have become free."""
        name = str(headers.get("Event", ""))
        if name not in FREEING_EVENTS:
            return
        if name == "QueueMemberStatus" and str(headers.get("Status", "")) != "1":
            return
        if name == "QueueMemberPause" and str(headers.get("Paused", "")) != "0":
            return
        self.kick(str(headers.get("Queue", "")) or None)
        # Asterisk's member state settles over a few events (device state, InCall, AgentComplete):
        # a QueueStatus read at once may still show the member busy, so look again shortly after.
        loop = asyncio.get_running_loop()
        for delay in RECHECK_AFTER_S:
            loop.call_later(delay, self._wake.set)

    async def on_ami_event(self, event: AmiEvent) -> None:
        """AgentConnect of a callback's call: done; its Hangup before that: an unanswered attempt."""
        uid = event.uniqueid
        if not isinstance(event, (AgentConnect, Hangup)) or "out-" not in uid:
            return
        # AMI events are handled in tasks of their own: one call's AgentConnect and the Hangup right
        # after it must be taken in the order they came (FIFO lock per call), or the hang-up could
        # count as "left the queue unanswered" before the agent was noted.
        lock = self._event_locks.setdefault(uid, asyncio.Lock())
        try:
            async with lock:
                await self._call_event(event, uid)
        finally:
            if isinstance(event, Hangup) and not lock.locked():
                self._event_locks.pop(uid, None)

    async def _call_event(self, event: AmiEvent, uid: str) -> None:
        callback_id = self._ours.get(uid)
        if callback_id is None:
            row = await self.store.by_outbound(uid)
            if row is None:
                return
            callback_id = row["id"]
        now = self.clock()
        if isinstance(event, AgentConnect):
            agent = agent_id_of(event.interface, event.member_name)
            if await self.store.agent_answered(callback_id, agent=agent, now=now) is not None:
                self.counters["done"] += 1
                log.info("callback %s: agent %s took the call %s", callback_id, agent, uid)
        else:
            self._ours.pop(uid, None)
            after = await self.store.left_unanswered(callback_id, policy=self.policy, now=now)
            if after is not None:
                log.info("callback %s: the citizen hung up before an agent answered -> %s", callback_id,
                         after["status"])
                self.kick()

    # -- the dispatcher -----------------------------------------------------------------------
    async def start(self) -> None:
        released = await self.store.release_stale(older_than=timedelta(seconds=self.ring_seconds + 60),
                                                  now=self.clock(), instance=self.instance)
        if released:
            log.info("callback: %d attempt(s) interrupted by a stop are waiting again", released)
        self._task = asyncio.create_task(self._run(), name="callback-dispatcher")

    async def stop(self) -> None:
        tasks = [t for t in [self._task, *self._placing.values()] if t is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.check_seconds)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the next check tries again
                log.warning("callback dispatcher: %s", mask_text(repr(exc)))

    async def check(self) -> int:
        """Place every callback whose turn it is; how many were claimed here."""
        self.counters["checks"] += 1
        rows = await self.store.open()
        by_queue: dict[str, list[dict]] = {}
        for row in rows:
            by_queue.setdefault(row["queue"], []).append(row)
        if self.outbound is None:
            self._waiting = {q: sum(r["status"] == "waiting" for r in items) for q, items in by_queue.items()}
            return 0
        self._waiting = {q: sum(r["status"] == "waiting" for r in items) for q, items in by_queue.items()}
        claimed = 0
        now = self.clock()
        for queue, items in by_queue.items():
            if not any(r["status"] == "waiting" for r in items):
                continue
            snapshot = await self.queue_snapshot(queue)
            if snapshot is None:
                continue
            ours = {r["outbound_uniqueid"] for r in items if r["outbound_uniqueid"]} | set(self._ours)
            joined = [now - timedelta(seconds=w.wait_s) for w in snapshot.waiting if w.uniqueid not in ours]
            for pending in due([pending_of(r) for r in items], waiting_joined=joined, free_members=snapshot.free,
                               now=now):
                row = await self.store.claim(pending.id, instance=self.instance, now=self.clock())
                if row is None:
                    self.counters["claims_lost"] += 1
                    continue
                claimed += 1
                freed = self._freed_at.pop(queue, None)
                if freed is not None:
                    self.placed_after.append(time.monotonic() - freed)
                self._placing[row["id"]] = asyncio.create_task(self._place(row), name=f"callback-{row['id']}")
        for queue in list(self._freed_at):
            if queue not in by_queue:
                self._freed_at.pop(queue, None)
        return claimed

    async def _place(self, row: dict) -> None:
        callback_id = row["id"]
        try:
            self.counters["placed"] += 1
            log.info("callback %s: calling %s back (attempt %d) for queue %s", callback_id,
                     mask_number(row["number"]), row["attempts"], row["queue"])
            try:
                result = await self.outbound.dial(
                    row["number"], purpose=PURPOSE, ref=str(callback_id), timeout_s=self.ring_seconds,
                    variables={"QUEUE_PRIO": str(self.priority)})
                outcome, reason, uid = result.outcome, str(result.reason), result.uniqueid
            except GatewayError as exc:
                outcome, reason, uid = "failed", mask_text(exc.message)[:150], None
            if outcome == "answered":
                self.counters["answered"] += 1
                if uid:
                    self._ours[uid] = callback_id
            else:
                self.counters["not_answered"] += 1
            after = await self.store.attempt_ended(callback_id, outcome=outcome, reason=reason, policy=self.policy,
                                                   now=self.clock(), outbound_uniqueid=uid)
            log.info("callback %s: attempt %d %s (%s) -> %s", callback_id, row["attempts"], outcome, reason,
                     after["status"] if after else "unchanged")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the row stays dialling; release_stale puts it back
            log.error("callback %s: placing failed: %s", callback_id, mask_text(repr(exc)))
        finally:
            self._placing.pop(callback_id, None)

    # -- the answered call (FastAGI route "callback") ------------------------------------------
    async def answered_call(self, session, channel, ref: str) -> None:
        """The citizen answered: the notice, then the queue (QUEUE_PRIO came with the Originate)."""
        try:
            callback_id = int(ref)
            row = await self.store.get(callback_id)
        except (ValueError, GatewayError):
            log.warning("callback call %s: unknown callback %r; hanging up", session.env.uniqueid, mask_text(ref))
            await channel.hangup()
            return
        if row["status"] not in ("dialling", "connected"):
            log.info("callback %s: answered but %s meanwhile; hanging up", callback_id, row["status"])
            await channel.hangup()
            return
        uid = session.env.uniqueid
        self._ours[uid] = callback_id
        await self.store.dialled(callback_id, outbound_uniqueid=uid, now=self.clock())
        notice = self.notice_key()
        if notice:
            await channel.play(notice)
        await channel.transfer_to_queue(row["queue"])

    # -- the supervisor ------------------------------------------------------------------------
    async def cancel(self, callback_id: int, *, actor: str) -> dict:
        row = await self.store.cancel(callback_id, actor=actor, now=self.clock())
        task = self._placing.get(callback_id)
        log.info("callback %s cancelled by %s%s", callback_id, actor, " (a call is ringing)" if task else "")
        return row

    async def overview(self) -> dict:
        """The supervisor board's part: callbacks open now (numbers masked)."""
        rows = await self.store.open()
        now = self.clock()
        items = []
        for row in rows:
            since = _parse_iso(row["requested_at"])
            items.append({**row, "waiting_s": round(max(0.0, (now - since).total_seconds()), 1)})
        return {"callbacks": items}

    def stats(self) -> dict:
        return {**self.counters, "placing": len(self._placing)}
