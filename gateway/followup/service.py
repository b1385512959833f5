"""The follow-up scheduler and the follow-up calls it places.

Theory of operation
-------------------
Every ``GATEWAY_FOLLOWUP_TICK`` seconds the instance that holds the bus's leadership (one
across the gateway instances of a site; always, with one instance) runs one round:

1. rows left ``calling`` by an instance that stopped (or by this one before a restart) are
   settled as unanswered attempts (retried, or ``unreachable`` after the last);
2. every ticket that reached ``handling="handled"`` and has no follow-up row gets one
   (:meth:`FollowupStore.create`): due at :func:`policy.first_call_at` (the delay after
   办结, inside the calling window), or ``refused``/``unreachable`` at once (opted out at
   intake, no number to call);
3. inside the calling window, due rows are claimed (``calling``) up to
   ``GATEWAY_FOLLOWUP_MAX_CALLS`` calls at once, and each is dialled through the gateway's
   outbound calls (purpose ``followup``, ref = the follow-up id).

An answered call comes back as a FastAGI session of purpose ``followup``
(:meth:`FollowupService.on_session`, on whichever instance Asterisk reached): it walks the
follow-up flow and writes the answers itself, so nothing depends on the dialling instance
staying up. The dialling task only settles what the session did not: no answer, busy, a
failed originate, or an answered call whose session never came (after ``CALL_LIMIT``).
All state is in the database: a restart loses no follow-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Protocol

from gateway.followup import policy
from gateway.followup.ivr import FlowMissing, IvrResult, LivePrompts, followup_flow, run_followup_ivr
from gateway.followup.store import Answers, FollowupStore
from gateway.ivr_flows.calendar import is_open
from gateway.ivr_flows.channel import Recording
from gateway.ivr_flows.model import GatewayConfig, Schedule
from gateway.masking import mask_number

log = logging.getLogger(__name__)

PURPOSE = "followup"
CALL_LIMIT = 900.0  # seconds an answered follow-up may last before its row is settled without it
# Built-in window when GATEWAY_FOLLOWUP_HOURS names no schedule of the live configuration:
# Monday-Friday 09:00-20:00 (Asia/Shanghai, no holidays known: /healthz says so).
DEFAULT_WINDOW = Schedule("followup-default", weekly={d: ((9 * 60, 20 * 60),) for d in range(5)})


class Dialler(Protocol):
    """The gateway's outbound calls (gateway.pbx.outbound.Outbound)."""

    async def dial(self, number: str, *, purpose: str, ref: str, timeout_s: float, caller_id: str,
                   variables: dict) -> Any: ...


@dataclass(frozen=True)
class FollowupSettings:
    enabled: bool = True
    hours: str = "followup"
    policy: policy.RetryPolicy = policy.RetryPolicy()
    ring_seconds: float = 30.0
    max_calls: int = 4
    tick: float = 5.0
    caller_id: str = "12345"

    @classmethod
    def of(cls, s) -> FollowupSettings:
        return cls(enabled=s.followup, hours=s.followup_hours,
                   policy=policy.RetryPolicy(delay=timedelta(seconds=s.followup_delay), attempts=s.followup_attempts,
                                             interval=timedelta(seconds=s.followup_retry_interval)),
                   ring_seconds=s.followup_ring_seconds, max_calls=s.followup_max_calls, tick=s.followup_tick,
                   caller_id=s.followup_caller_id)


class FollowupService:
    def __init__(self, *, store: FollowupStore, config: Callable[[], GatewayConfig], clock: Callable[[], datetime],
                 settings: FollowupSettings, prompts: LivePrompts, instance: str,
                 leader: Callable[[], bool] = lambda: True, dialler: Dialler | None = None,
                 recording_path: Callable[[Recording], str] = lambda r: f"{r.path}.{r.fmt}",
                 transcriber: Callable[[], Any] = lambda: None, single_instance: bool = False) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self.settings = settings
        self.prompts = prompts
        self.instance = instance
        self.leader = leader
        self.dialler = dialler
        self.recording_path = recording_path
        self.transcriber = transcriber  # () -> a SpeechEngine (transcribe_file) or None
        self.single_instance = single_instance  # no other instance: every row "calling" at start is stale
        self.active: dict[int, asyncio.Task] = {}  # follow-up id -> its dialling task
        self._sessions: dict[int, asyncio.Future] = {}  # follow-up id -> settled by its session here
        self._aliases: dict[int, dict] = {}
        self._background: set[asyncio.Task] = set()
        self._task: asyncio.Task | None = None
        self._started = False
        self.problem: str | None = None
        self.counters = {"rounds": 0, "scheduled": 0, "calls": 0, "answered": 0, "unanswered": 0, "refused": 0,
                         "unreachable": 0, "failed": 0, "sessions": 0}

    # -- the window ------------------------------------------------------------------------

    def schedule(self, config: GatewayConfig) -> Schedule:
        found = config.schedules.get(self.settings.hours)
        if found is None:
            self.problem = (f"GATEWAY_FOLLOWUP_HOURS={self.settings.hours!r} is not a schedule of hotlines.yaml: "
                            "calling Monday-Friday 09:00-20:00 without holidays")
            return DEFAULT_WINDOW
        return found

    # -- the rounds ------------------------------------------------------------------------

    def start(self) -> None:
        if self.settings.enabled:
            self._task = asyncio.create_task(self._loop(), name="followup-scheduler")

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self.active.values(), *self._background) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            if self.leader():
                try:
                    await self.run_once()
                except Exception:  # noqa: BLE001 - the scheduler must survive a bad round
                    log.exception("follow-up round failed")
            await asyncio.sleep(self.settings.tick)

    async def run_once(self) -> dict:
        """One round (see the module's docstring); returns what it did."""
        config = self.config()
        schedule = self.schedule(config)
        now = self.clock()
        done = {"released": 0, "created": 0, "claimed": 0}
        older = timedelta(seconds=CALL_LIMIT + self.settings.ring_seconds + 60)
        if not self._started and self.single_instance:
            older = timedelta(0)  # one instance, just started: nobody is on any call of ours
        stale = await self.store.release_stale(now=now, older_than=older,
                                               instance=None if self._started else self.instance)
        self._started = True
        for row in stale:
            if row["id"] in self.active:
                continue
            await self._unanswered(row, "lost", uniqueid=row.get("uniqueid"), schedule=schedule)
            done["released"] += 1
        for item in await self.store.unscheduled(limit=200):
            at = policy.first_call_at(schedule, self.settings.policy, handled_at=item["handled_at"], now=now)
            if await self.store.create(item["ticket_id"], next_at=at, now=now) is not None:
                done["created"] += 1
                self.counters["scheduled"] += 1
        free = self.settings.max_calls - len(self.active)
        if self.dialler is not None and free > 0 and is_open(schedule, now):
            try:
                followup_flow(config)
            except FlowMissing as exc:
                self.problem = str(exc)
                return done
            for row in await self.store.claim_due(self.instance, now=now, limit=free):
                done["claimed"] += 1
                task = asyncio.create_task(self._call(row, config), name=f"followup-{row['id']}")
                self.active[row["id"]] = task
                task.add_done_callback(lambda _t, fid=row["id"]: self.active.pop(fid, None))
        self.counters["rounds"] += 1
        return done

    # -- one call --------------------------------------------------------------------------

    async def _call(self, row: dict, config: GatewayConfig) -> None:
        fid, ticket = row["id"], row["ticket"]
        number = ticket["caller_number"]
        loop = asyncio.get_running_loop()
        settled = self._sessions.setdefault(fid, loop.create_future())
        try:
            try:
                self._aliases[fid] = await self.prompts.for_ticket(config, called_at=_when(ticket["created_at"]))
            except Exception as exc:  # noqa: BLE001 - no greeting to play: an unanswered attempt, retried
                log.error("follow-up %s: its greeting could not be rendered: %s", fid, exc)
                self.counters["failed"] += 1
                await self._unanswered(row, "prompt_failed", uniqueid=None)
                return
            self.counters["calls"] += 1
            log.info("follow-up %s of ticket %s: calling %s (attempt %s)", fid, row["ticket_id"],
                     mask_number(number), row["attempts"])
            try:
                result = await self.dialler.dial(number, purpose=PURPOSE, ref=str(fid),
                                                 timeout_s=self.settings.ring_seconds,
                                                 caller_id=self.settings.caller_id, variables={})
                outcome, uniqueid = str(getattr(result, "outcome", "failed")), getattr(result, "uniqueid", None)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - an originate that failed is an unanswered attempt
                log.warning("follow-up %s: the call could not be placed: %s", fid, exc)
                outcome, uniqueid = "failed", None
            if outcome != "answered":
                self.counters["failed" if outcome == "failed" else "unanswered"] += 1
                await self._unanswered(row, outcome, uniqueid=uniqueid)
                return
            if uniqueid:
                await self.store.set_uniqueid(fid, str(uniqueid))
            await self._wait_settled(fid, settled, row, uniqueid)
        finally:
            self._sessions.pop(fid, None)
            self._aliases.pop(fid, None)

    async def _wait_settled(self, fid: int, settled: asyncio.Future, row: dict, uniqueid: str | None) -> None:
        """The answered call's session writes the answers (here or on another instance): wait for it."""
        deadline = asyncio.get_running_loop().time() + CALL_LIMIT
        while asyncio.get_running_loop().time() < deadline:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(settled), timeout=2.0)
                return
            if (await self.store.get(fid))["status"] != "calling":
                return  # settled by a session on another instance
        log.warning("follow-up %s: answered but no follow-up session came within %.0f s", fid, CALL_LIMIT)
        await self._unanswered(row, "no_session", uniqueid=uniqueid)

    async def _unanswered(self, row: dict, outcome: str, *, uniqueid: str | None,
                          schedule: Schedule | None = None) -> dict:
        schedule = schedule or self.schedule(self.config())
        now = self.clock()
        after = policy.after_unanswered(schedule, self.settings.policy, attempts=row["attempts"], now=now)
        if after.status == "unreachable":
            self.counters["unreachable"] += 1
        return await self.store.unanswered(row["id"], outcome=outcome, uniqueid=uniqueid, status=after.status,
                                           next_at=after.next_at, now=now)

    # -- the answered call (FastAGI, purpose "followup") ------------------------------------

    async def on_session(self, session, channel, ref: str) -> None:
        """Walk the follow-up flow with the citizen and store what they answered."""
        self.counters["sessions"] += 1
        uniqueid = _uniqueid_of(session, channel)
        try:
            fid = int(ref)
            row = await self.store.get(fid)
        except Exception:  # noqa: BLE001 - a bad or unknown ref: nobody to ask, end the call
            log.warning("follow-up session %s with unknown ref %r: hanging up", uniqueid, ref[:40])
            await _hangup(channel)
            return
        if row["status"] != "calling":
            log.warning("follow-up %s is %s, not calling: session %s hangs up", fid, row["status"], uniqueid)
            await _hangup(channel)
            return
        settled = self._sessions.get(fid)
        try:
            config = self.config()
            aliases = self._aliases.get(fid) or await self.prompts.for_ticket(
                config, called_at=_when(row["ticket"]["created_at"]))
            result = await run_followup_ivr(config, channel, uniqueid=uniqueid or f"f{fid}",
                                            number=row["ticket"]["caller_number"], aliases=aliases,
                                            clock=self.clock, recording_path=self.recording_path)
            await self.store_result(row, result, uniqueid)
        except Exception:
            log.exception("follow-up %s: the session failed", fid)
            with contextlib.suppress(Exception):
                if (await self.store.get(fid))["status"] == "calling":
                    await self._unanswered(row, "error", uniqueid=uniqueid)
        finally:
            if settled is not None and not settled.done():
                settled.set_result(True)

    async def store_result(self, row: dict, result: IvrResult, uniqueid: str | None) -> dict:
        now = self.clock()
        log.info("follow-up %s of ticket %s: %s (solved %s, satisfaction %s, comment %s)", row["id"],
                 row["ticket_id"], result.outcome, result.solved, result.satisfaction, result.comment_status)
        if result.outcome == "answered":
            self.counters["answered"] += 1
            answers = Answers(result.solved, result.satisfaction, comment_path=result.comment_path,
                              comment_transcript=result.comment_transcript, comment_status=result.comment_status)
            out = await self.store.answered(row["ticket_id"], answers, via="ivr", now=now, actor="followup",
                                            followup_id=row["id"], uniqueid=uniqueid)
            if result.comment_status == "pending" and result.comment_path:
                task = asyncio.create_task(self._transcribe(row["id"], result.comment_path))
                self._background.add(task)
                task.add_done_callback(self._background.discard)
            return out
        if result.outcome == "refused":
            self.counters["refused"] += 1
            return await self.store.refused(row["id"], uniqueid=uniqueid, now=now)
        self.counters["unanswered"] += 1
        return await self._unanswered(row, result.outcome, uniqueid=uniqueid)

    async def _transcribe(self, fid: int, path: str) -> None:
        """A comment recorded without a live recogniser: transcribed now if the engine can."""
        engine = self.transcriber()
        if engine is None or not engine.available("zh"):
            return  # stays pending: the recording is on the follow-up for a person to hear
        try:
            transcript = await engine.transcribe_file(Path(path), "zh")
            text = str(transcript.to_json().get("text") or "").strip()
            await self.store.set_comment_transcript(fid, text=text[:2000] or None, status="done")
        except Exception as exc:  # noqa: BLE001 - the comment's recording stays; a person can hear it
            log.warning("follow-up %s: the comment could not be transcribed: %s", fid, exc)

    # -- views -------------------------------------------------------------------------------

    async def health(self) -> dict:
        return {"scheduler": ("on" if self.settings.enabled else "off") if self.dialler is not None
                else "no outbound calls", "leader": self.leader(), "active_calls": len(self.active),
                "hours": self.settings.hours, "problem": self.problem, "rows": await self.store.counts()}


def _when(value) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def _uniqueid_of(session, channel) -> str | None:
    env = getattr(session, "env", None)
    if isinstance(getattr(env, "uniqueid", None), str) and env.uniqueid:
        return env.uniqueid  # gateway.pbx.agi's environment: the id dial() chose
    for obj in (session, channel):
        for name in ("uniqueid", "id"):
            value = getattr(obj, name, None)
            if isinstance(value, str) and value:
                return value
    return None


async def _hangup(channel) -> None:
    with contextlib.suppress(Exception):
        await channel.hangup()
