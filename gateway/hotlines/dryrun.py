"""Dry run: what would a call to a number at a given time do, on a given configuration?

The real interpreter walks the flow over a channel that records instead of
playing: it answers "a call to 12319 at 23:00 on a make-up Saturday" with the
menu path, the prompts (and their texts) and the destination, before anything
is applied.
"""

from __future__ import annotations

from datetime import datetime

from gateway.errors import GatewayError, NotFound
from gateway.ivr_flows.calendar import is_open
from gateway.ivr_flows.channel import Recording
from gateway.ivr_flows.engine import CallState, Interpreter, NullObserver, format_step
from gateway.ivr_flows.model import GatewayConfig


class BadDryRun(GatewayError):
    status_code = 400
    error_id = "bad-dry-run"


class _DryChannel:
    def __init__(self, digits: str) -> None:
        self.keys = list(digits)
        self.heard: list[str] = []
        self.destination: dict | None = None

    async def play(self, prompt_id: str, *, keys: str = "", interruptible: bool = True) -> str:
        self.heard.append(prompt_id)
        return ""  # a dry run's keys answer menus, never type-ahead

    async def collect_digits(self, prompt_id: str, *, max_digits: int, timeout: float) -> str:
        self.heard.append(prompt_id)
        return self.keys.pop(0) if self.keys else ""

    async def record(self, name, *, max_seconds, silence_seconds, beep_prompt_id) -> Recording:
        if beep_prompt_id:
            self.heard.append(beep_prompt_id)
        return Recording(path=f"dry-run/{name}", fmt="wav", duration_ms=0, ended_by="silence")

    async def transfer_to_queue(self, queue, *, wait_seconds=None, overflow_queue=None) -> None:
        self.destination = {"queue": queue, "overflow_queue": overflow_queue, "overflow_seconds": wait_seconds}

    def can_listen(self, language: str) -> bool:
        return False  # a dry run shows the keypad path (what every caller can use)

    async def listen(self, name, **kwargs):  # never called: can_listen() is False
        raise AssertionError("dry run does not listen")

    async def hangup(self) -> None:
        self.destination = {"hangup": True}


async def dry_run(config: GatewayConfig, *, number: str, at: datetime, digits: str = "") -> dict:
    if at.tzinfo is None:
        raise BadDryRun("'at' needs a UTC offset, e.g. 2027-02-20T23:00:00+08:00")
    if any(c not in "0123456789*#" for c in digits) or len(digits) > 20:
        raise BadDryRun("'digits' takes up to 20 of 0-9, * and #")
    line = config.line(number)
    if line is None:
        raise NotFound(f"no line {number} in this configuration", details={"number": number})
    from gateway.pbx.prompts import catalogue

    texts = {key: p.text for key, p in catalogue(config).items()}
    channel = _DryChannel(digits)
    state = CallState(uniqueid="dry-run", line=line, caller="", dialled=number)
    await Interpreter(config, clock=lambda: at).run(state, channel, NullObserver())
    return {
        "number": number, "line": line.name, "mode": line.mode, "at": at.isoformat(),
        "open": is_open(config.schedules[line.hours], at), "digits": digits,
        "path": state.path, "path_text": ">".join(format_step(s) for s in state.path),
        "heard": [{"prompt": key, "text": texts.get(key, "")} for key in channel.heard],
        "destination": channel.destination, "outcome": state.outcome,
        "handled_by": state.vars.get("handled_by") or None, "department": state.vars.get("department") or None,
        "category": state.vars.get("category"),
    }
