"""The SMS sender loop: claims due texts from the outbox and sends them, one at a time.

Every ``poll`` seconds (or when :meth:`SmsWorker.wake` is called) it claims up to ``batch``
due texts for this instance (:meth:`Outbox.claim`: of two gateway instances only one gets a
row) and sends each through the sender; the result goes back to the row (sent / failed with
backoff / dead). A database that does not answer is retried at the next poll; nothing is
held in memory that the database does not also have, so a restart loses nothing (a text
claimed by a process that died is due again once its lease ends). Without a sender the
loop does not run: the texts wait as ``pending`` (``/healthz`` says so).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from gateway.masking import mask_number
from gateway.sms.outbox import Outbox
from gateway.sms.senders import SendResult, SmsMessage, SmsSender

log = logging.getLogger(__name__)


class SmsWorker:
    def __init__(self, outbox: Outbox, sender: SmsSender | None, *, instance: str, poll: float = 2.0,
                 batch: int = 10) -> None:
        self.outbox = outbox
        self.sender = sender
        self.instance = instance
        self.poll = poll
        self.batch = batch
        self._task: asyncio.Task | None = None
        self._wake = asyncio.Event()
        self.counters = {"sent": 0, "failed": 0, "dead": 0, "errors": 0}
        self.last_error: str | None = None

    async def start(self) -> None:
        if self.sender is None:
            log.warning("SMS: no sender configured (GATEWAY_SMS_WEBHOOK_URL): texts are kept pending in the outbox")
            return
        await self.sender.start()
        self._task = asyncio.create_task(self._loop(), name="sms-worker")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.sender is not None:
            await self.sender.close()

    def wake(self) -> None:
        self._wake.set()

    async def _loop(self) -> None:
        while True:
            try:
                while await self.run_once():
                    pass
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the database away: try at the next poll
                self.counters["errors"] += 1
                self.last_error = type(exc).__name__
                log.warning("SMS: outbox not reachable (%s); retrying in %.0f s", self.last_error, self.poll)
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll)

    async def run_once(self) -> int:
        """Claim and send one batch; how many were claimed."""
        if self.sender is None:
            return 0
        claimed = await self.outbox.claim(self.instance, limit=self.batch)
        for row in claimed:
            message = SmsMessage(id=row["id"], to=row["to_number"], body=row["body"], kind=row["kind"],
                                 ticket_id=row["ticket_id"])
            try:
                result = await self.sender.send(message)
            except Exception as exc:  # noqa: BLE001 - a sender's bug is a failed attempt, not a dead loop
                result = SendResult(False, error=f"sender error ({type(exc).__name__})")
            if result.ok:
                await self.outbox.sent(message.id, self.instance, result.provider_ref)
                self.counters["sent"] += 1
                log.info("SMS %d (%s) to %s sent", message.id, message.kind, mask_number(message.to))
            else:
                status = await self.outbox.failed(message.id, self.instance, result.error, final=result.final)
                self.counters["dead" if status == "dead" else "failed"] += 1
                log.warning("SMS %d to %s not sent: %s (%s)", message.id, mask_number(message.to), result.error, status)
        return len(claimed)
