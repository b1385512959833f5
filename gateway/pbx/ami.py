"""AMI client: panoramisk's protocol, wrapped for its known gaps (DESIGN.md).

Theory of operation
-------------------
panoramisk's ``Manager`` parses AMI well but (1) pings without checking the
answer, (2) reconnects every 2 s without backoff, (3) lets actions wait
forever, and (4) re-sends pending actions after a reconnect, so a stale
``Originate`` could place a call twice. We therefore:

* build a **fresh** ``Manager`` for every connection and never call its own
  ``connect``/reconnect: its ``connection_lost`` is replaced by ours, so the
  supervisor loop below owns reconnection;
* tell two kinds of failure apart. Asterisk *down* (the TCP connect is refused
  or times out) is probed again every ``probe_interval`` (a bare TCP connect
  costs Asterisk nothing), so the client logs in within about that interval of
  Asterisk answering again. A peer that *accepts* TCP but refuses the login (a
  wrong secret) or keeps dropping the link soon after it (shorter than
  ``stable_after``) is retried with exponential backoff up to ``backoff_max``;
* call every ``on_connected`` hook after each login (the reconciler asks
  Asterisk what happened while the link was down);
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
import inspect
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
ConnectedHook = Callable[[], Awaitable[None] | None]


class _Unreachable(PbxError):
    """The TCP connect itself failed: nobody listens (yet) at the AMI address."""


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
        probe_interval: float = 0.25,
        stable_after: float = 5.0,
    ) -> None:
        self.host, self.port, self.username, self.secret = host, port, username, secret
        self.action_timeout = action_timeout
        self.ping_interval = ping_interval
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.probe_interval = probe_interval
        self.stable_after = stable_after
        self._connected_hooks: list[ConnectedHook] = []
        self._hook_tasks: set[asyncio.Task] = set()
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
        self.connected_at: float | None = None  # loop time of the last login
        self.down_since: float | None = None  # loop time the link was last lost (None while up)
        self.last_outage_s: float | None = None  # how long the last outage lasted, login to login

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

    def on_connected(self, hook: ConnectedHook) -> None:
        """``hook()`` (sync or async) runs after every login, the first one included; it runs
        in a task of its own, so it may send actions; its failure is logged, never fatal."""
        self._connected_hooks.append(hook)

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
        hooks, self._hook_tasks = self._hook_tasks, set()
        for hook in hooks:
            hook.cancel()
        if hooks:
            await asyncio.wait(hooks, timeout=1.0)
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
        loop = asyncio.get_running_loop()
        unreachable_logged = False
        while not self._closing:
            up_at: float | None = None
            try:
                await self._connect_once()
                up_at = loop.time()
                unreachable_logged = False
                self._run_connected_hooks()
                await self._keepalive()
            except asyncio.CancelledError:
                raise
            except _Unreachable as exc:
                # Nobody listens: probe again soon, without growing the backoff (a bare TCP
                # connect costs Asterisk nothing), and log that once per outage.
                self.last_error = mask_text(str(exc)) or type(exc).__name__
                if not unreachable_logged:
                    log.warning("AMI %s:%s: %s; probing every %.2f s", self.host, self.port, self.last_error,
                                self.probe_interval)
                    unreachable_logged = True
                self._drop(self.last_error)
                if self._closing:
                    break
                await asyncio.sleep(self.probe_interval)
                continue
            except Exception as exc:  # noqa: BLE001 - any failure means: reconnect later
                self.last_error = mask_text(str(exc)) or type(exc).__name__
            self._drop(self.last_error or "disconnected")
            if self._closing:
                break
            if up_at is not None and loop.time() - up_at >= self.stable_after:
                # A link that was up for a while and dropped (Asterisk stopped or crashed):
                # come back at once; the probing above takes over if it is gone.
                backoff = self.backoff_initial
                log.warning("AMI %s:%s: %s; reconnecting", self.host, self.port, self.last_error)
                continue
            # A refused login, or a link that keeps dropping soon after it is made: back off.
            log.warning("AMI %s:%s: %s; retrying in %.1f s", self.host, self.port, self.last_error, backoff)
            await asyncio.sleep(backoff * random.uniform(0.8, 1.2))
            backoff = min(backoff * 2, self.backoff_max)

    def _run_connected_hooks(self) -> None:
        for hook in self._connected_hooks:
            try:
                result = hook()
            except Exception:  # noqa: BLE001
                log.exception("AMI on-connected hook failed")
                continue
            if inspect.isawaitable(result):
                task = asyncio.ensure_future(result)
                self._hook_tasks.add(task)
                task.add_done_callback(self._hook_tasks.discard)
                task.add_done_callback(_log_failure)

    async def _connect_once(self) -> None:
        loop = asyncio.get_running_loop()
        manager = Manager(
            loop=loop, host=self.host, port=self.port, username=self.username, secret=self.secret,
            ping_delay=10**9, ping_interval=10**9, reconnect_timeout=10**9, encoding="utf8",
            forgetable_actions=(), log=logging.getLogger("gateway.pbx.panoramisk"),
        )
        lost = self._lost = asyncio.Event()
        # Ours, not panoramisk's auto-reconnect; bound to this connection, so a late loss of an
        # earlier one cannot end this one.
        manager.connection_lost = lambda exc: self._on_connection_lost(exc, lost)
        manager.register_event("*", self._dispatch)
        base_factory = manager.config["protocol_factory"]

        def protocol_factory():
            # panoramisk gives the protocol its manager only in Manager.connection_made, after
            # create_connection returns: a peer that hangs up at once (a relay whose Asterisk is
            # down) was lost before that, unseen (AttributeError inside panoramisk), and the
            # login waited its whole timeout. Give it the manager as soon as it is connected.
            proto = base_factory()
            made = proto.connection_made

            def connection_made(transport) -> None:
                made(transport)
                proto.factory = manager

            proto.connection_made = connection_made
            return proto

        connect = loop.create_connection(protocol_factory, self.host, self.port)
        try:
            transport, protocol = await asyncio.wait_for(connect, min(self.action_timeout, 2.0))
        except (OSError, asyncio.TimeoutError) as exc:
            raise _Unreachable(f"cannot connect: {exc or type(exc).__name__}") from None
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
            # asyncio.wait never cancels the login future: cancelling it would make panoramisk's
            # own done-callback (Manager.login) raise CancelledError, logged as a traceback.
            lost_wait = asyncio.ensure_future(lost.wait())
            try:
                await asyncio.wait({login, lost_wait}, timeout=self.action_timeout,
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                lost_wait.cancel()
            if login.done():
                response = login.result()
            elif self._lost.is_set() and getattr(protocol, "version", None) is None:
                # Closed before Asterisk's greeting: something in front of it (a proxy, a
                # balancer) whose Asterisk is not up. As unreachable as a refused connect.
                raise _Unreachable("connection closed before Asterisk's greeting")
            elif self._lost.is_set():
                raise PbxError("AMI connection lost during login")
            else:
                raise PbxError(f"AMI login got no answer in {self.action_timeout:g} s")
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
        now = loop.time()
        if self.down_since is not None:
            self.last_outage_s = now - self.down_since
        self.connected_at, self.down_since = now, None
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

    def _on_connection_lost(self, exc, lost: asyncio.Event | None = None) -> None:
        if lost is not None and lost is not self._lost:
            return  # an earlier connection, already dropped
        self._mark_down()
        self._connected.clear()
        self._lost.set()
        # Fail pending actions now: panoramisk would park them for replay, and waiting for
        # the keep-alive could take a whole action_timeout (and report AmiTimeout instead).
        self._fail_pending("connection lost")

    def _mark_down(self) -> None:
        if self._connected.is_set() and self.down_since is None:
            self.down_since = asyncio.get_running_loop().time()

    def _drop(self, reason: str) -> None:
        self._mark_down()
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
