"""AMI client: panoramisk's protocol, wrapped for its known gaps (DESIGN.md).

Theory of operation
-------------------
panoramisk's ``Manager`` parses AMI well but (1) pings without checking the
answer, (2) reconnects every 2 s without backoff, (3) lets actions wait
forever, and (4) re-sends pending actions after a reconnect, so a stale
``Originate`` could place a call twice. We therefore:

* build a **fresh** ``Manager`` for every connection and never call its own
  ``connect``/reconnect: its ``connection_lost`` is replaced by ours, so the
  supervisor loop below owns reconnection, with exponential backoff;
* fail every action still pending when the link drops (``AmiNotConnected``)
  instead of queueing it, so nothing is ever replayed;
* put a deadline on every action (``AmiTimeout``);
* run our own keep-alive that checks the ``Ping`` answer and drops the link
  when it is missing or wrong (a half-open TCP connection is noticed).

Events are turned into typed events (:mod:`gateway.pbx.ami_events`) and
handed to subscribers; a subscriber's exception is logged, never fatal.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Awaitable, Callable

from panoramisk import Manager

from gateway.errors import AmiNotConnected, AmiTimeout, PbxError
from gateway.masking import mask_text
from gateway.pbx.ami_events import AmiEvent, parse_event

log = logging.getLogger(__name__)
Subscriber = Callable[[AmiEvent], Awaitable[None] | None]
RawSubscriber = Callable[[dict], None]


class AmiClient:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        username: str,
        secret: str,
        action_timeout: float = 5.0,
        ping_interval: float = 10.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
    ) -> None:
        self.host, self.port, self.username, self.secret = host, port, username, secret
        self.action_timeout = action_timeout
        self.ping_interval = ping_interval
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._manager: Manager | None = None
        self._subscribers: list[Subscriber] = []
        self._raw_subscribers: list[RawSubscriber] = []
        self._connected = asyncio.Event()
        self._lost: asyncio.Event = asyncio.Event()
        self._pending: set[asyncio.Future] = set()
        self._task: asyncio.Task | None = None
        self._closing = False
        self.connects = 0
        self.last_error: str | None = None

    # -- public -----------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def subscribe(self, callback: Subscriber) -> None:
        self._subscribers.append(callback)

    def subscribe_raw(self, callback: RawSubscriber) -> None:
        self._raw_subscribers.append(callback)

    def unsubscribe_raw(self, callback: RawSubscriber) -> None:
        if callback in self._raw_subscribers:
            self._raw_subscribers.remove(callback)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._supervise(), name="ami-supervisor")

    async def wait_connected(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    async def close(self) -> None:
        self._closing = True
        task, self._task = self._task, None
        # Cancel until it is done: on 3.11 asyncio.wait_for can swallow a cancellation that
        # arrives as its inner wait finishes, and one cancel() alone then left close() waiting
        # for ever on a supervisor that went on pinging.
        while task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=1.0)
        if task is not None and not task.cancelled() and task.exception() is not None:
            log.debug("AMI supervisor ended with %r", task.exception())
        self._drop("closed")

    async def action(self, fields: dict, *, timeout: float | None = None, as_list: bool = False):
        """Send one action and return its response (a list of messages when ``as_list``)."""
        manager = self._manager
        if manager is None or not self.connected:
            raise AmiNotConnected(f"AMI is not connected ({self.last_error or 'starting'})")
        future = manager.send_action(dict(fields), as_list=as_list)
        self._pending.add(future)
        try:
            response = await asyncio.wait_for(asyncio.shield(future), timeout or self.action_timeout)
        except asyncio.TimeoutError:
            future.cancel()
            raise AmiTimeout(f"AMI action {fields.get('Action')} got no answer in {timeout or self.action_timeout} s")
        finally:
            self._pending.discard(future)
        if not as_list and getattr(response, "get", None) and response.get("Response") == "Error":
            raise PbxError(f"AMI {fields.get('Action')}: {response.get('Message', 'error')}")
        return response

    async def reload_module(self, module: str, *, timeout: float | None = None, busy_for: float = 10.0) -> None:
        """``Reload Module=<module>`` (``dialplan reload`` is ``pbx_config``); needs write class system.

        Asterisk runs one module reload at a time and refuses another meanwhile ("A reload is
        in progress"): that one is retried until ``busy_for`` seconds have passed.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + busy_for
        while True:
            try:
                await self.action({"Action": "Reload", "Module": module}, timeout=timeout)
                return
            except PbxError as exc:
                if "in progress" not in str(exc) or loop.time() >= deadline:
                    raise
            await asyncio.sleep(0.1)

    async def queue_reload(self, *, timeout: float | None = None) -> None:
        """``QueueReload``: members, rules and parameters, as ``queue reload all`` (no class needed)."""
        await self.action({"Action": "QueueReload"}, timeout=timeout)

    # -- connection supervision ------------------------------------------------------------
    async def _supervise(self) -> None:
        backoff = self.backoff_initial
        while not self._closing:
            try:
                await self._connect_once()
                backoff = self.backoff_initial
                await self._keepalive()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure means: reconnect later
                self.last_error = mask_text(str(exc)) or type(exc).__name__
                log.warning("AMI %s:%s: %s; retrying in %.1f s", self.host, self.port, self.last_error, backoff)
            self._drop(self.last_error or "disconnected")
            if self._closing:
                break
            await asyncio.sleep(backoff * random.uniform(0.8, 1.2))
            backoff = min(backoff * 2, self.backoff_max)

    async def _connect_once(self) -> None:
        loop = asyncio.get_running_loop()
        manager = Manager(
            loop=loop, host=self.host, port=self.port, username=self.username, secret=self.secret,
            ping_delay=10**9, ping_interval=10**9, reconnect_timeout=10**9, encoding="utf8",
            forgetable_actions=(), log=logging.getLogger("gateway.pbx.panoramisk"),
        )
        self._lost = asyncio.Event()
        manager.connection_lost = self._on_connection_lost  # ours, not panoramisk's auto-reconnect
        manager.register_event("*", self._dispatch)
        connect = loop.create_connection(manager.config["protocol_factory"], self.host, self.port)
        transport, protocol = await asyncio.wait_for(connect, self.action_timeout)
        done = loop.create_future()
        done.set_result((transport, protocol))
        manager.connection_made(done)
        if manager.pinger is not None:
            manager.pinger.cancel()
            manager.pinger = None
        try:
            login = manager.authenticated_future
            if login is None:
                raise PbxError("AMI login was not sent")
            # shield: cancelling the future would make panoramisk's own done-callback
            # (Manager.login) raise CancelledError, logged by asyncio as an error traceback.
            response = await asyncio.wait_for(asyncio.shield(login), self.action_timeout)
            if not manager.authenticated:
                raise PbxError(f"AMI login refused for user {self.username!r}: {response.get('Message', '')}")
        except BaseException:
            # Not yet ours to _drop: close it here, or the socket stays open (one more per
            # retry) and its late connection_lost would hit the next, healthy connection.
            manager.close()
            raise
        self._manager = manager
        self.connects += 1
        self.last_error = None
        self._connected.set()
        log.info("AMI connected to %s:%s as %s", self.host, self.port, self.username)

    async def _keepalive(self) -> None:
        while not self._closing:
            try:
                await asyncio.wait_for(self._lost.wait(), self.ping_interval)
                raise PbxError("AMI connection lost")
            except asyncio.TimeoutError:
                pass
            response = await self.action({"Action": "Ping"})
            if response.get("Response") != "Success" or response.get("Ping") != "Pong":
                raise PbxError(f"AMI ping got a bad answer: {dict(response)!r}")

    def _on_connection_lost(self, exc) -> None:
        self._connected.clear()
        self._lost.set()
        # Fail pending actions now: panoramisk would park them for replay, and waiting for
        # the keep-alive could take a whole action_timeout (and report AmiTimeout instead).
        self._fail_pending("connection lost")

    def _drop(self, reason: str) -> None:
        self._connected.clear()
        manager, self._manager = self._manager, None
        if manager is not None:
            manager.awaiting_actions.clear()
            try:
                manager.close()
            except Exception:  # noqa: BLE001 - closing a broken transport
                pass
            manager.awaiting_actions.clear()  # never replay anything on a new connection
        self._fail_pending(reason)

    def _fail_pending(self, reason: str) -> None:
        for future in list(self._pending):
            if not future.done():
                future.set_exception(AmiNotConnected(f"AMI connection dropped: {reason}"))
        self._pending.clear()

    def _dispatch(self, manager, message) -> None:
        headers = dict(message.items())
        for raw in self._raw_subscribers:
            try:
                raw(headers)
            except Exception:  # noqa: BLE001
                log.exception("AMI raw subscriber failed")
        event = parse_event(headers)
        if event is None:
            return
        for callback in self._subscribers:
            try:
                result = callback(event)
                if asyncio.iscoroutine(result):
                    task = asyncio.ensure_future(result)
                    task.add_done_callback(_log_failure)
            except Exception:  # noqa: BLE001
                log.exception("AMI subscriber failed on %s", event.name)


def _log_failure(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("AMI subscriber failed: %s", mask_text(repr(task.exception())))
