"""One AMI client per Asterisk node, behind the :class:`AmiClient` interface the features use.

Theory of operation
-------------------
With several nodes (``GATEWAY_ASTERISK_NODES``) the gateway keeps one
:class:`~gateway.pbx.ami.AmiClient` per node, each with its own supervision and
reconnection. The pool looks like one client to the features:

* ``subscribe``/``subscribe_raw`` subscribe to every node: the call features see the
  events of all nodes. The pool itself watches every node's raw events and remembers which
  node each channel (``Uniqueid``) lives on until its ``Hangup``; :meth:`node_of` answers
  that, so an event's node is known (uniqueids differ across nodes: each node has its own
  ``systemname``).
* ``action`` sends an action about a channel (``Channel`` header: the desk's ``Redirect``)
  to the node that owns it; when the owner is not known (a call older than the gateway's
  connection) the connected nodes are asked one after the other until one knows the
  channel. An action about no channel goes to the first connected node.
* ``connected`` is true while at least one node is connected (the gateway can work);
  :meth:`states` gives each node's state for ``/healthz``, and ``all_connected`` says
  whether the site is whole.
* ``reload_module``/``queue_reload`` reload every connected node (config applies go through
  :class:`gateway.hotlines.asterisk.AsteriskSync`, which reports per node).
* :meth:`on_connected` callbacks run each time a node (re)connects (through that node's own
  ``AmiClient.on_connected`` hook, no polling): the config apply uses it to reload a node that
  was away when a version was applied.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

from gateway.errors import AmiNotConnected, PbxError
from gateway.pbx.ami import AmiClient, RawSubscriber, Subscriber

log = logging.getLogger(__name__)
ConnectedHook = Callable[[str, AmiClient], Awaitable[None]]


class AmiPool:
    def __init__(self, clients: dict[str, AmiClient]) -> None:
        if not clients:
            raise ValueError("an AMI pool needs at least one node")
        self.clients = dict(clients)
        self._owner: dict[str, str] = {}  # Uniqueid -> node name, while the channel is up
        self._hooks: list[ConnectedHook] = []
        for name, client in self.clients.items():
            client.subscribe_raw(self._tracker(name))
            client.on_connected(self._node_connected(name, client))

    # -- what the features use (AmiClient's interface) ---------------------------------------
    @property
    def connected(self) -> bool:
        return any(c.connected for c in self.clients.values())

    @property
    def all_connected(self) -> bool:
        return all(c.connected for c in self.clients.values())

    @property
    def last_error(self) -> str | None:
        errors = [f"{name}: {c.last_error}" for name, c in self.clients.items() if not c.connected]
        return "; ".join(errors) or None

    @property
    def connects(self) -> int:
        return sum(c.connects for c in self.clients.values())

    def subscribe(self, callback: Subscriber) -> None:
        for client in self.clients.values():
            client.subscribe(callback)

    def subscribe_raw(self, callback: RawSubscriber) -> None:
        for client in self.clients.values():
            client.subscribe_raw(callback)

    def unsubscribe_raw(self, callback: RawSubscriber) -> None:
        for client in self.clients.values():
            client.unsubscribe_raw(callback)

    async def start(self) -> None:
        for client in self.clients.values():
            await client.start()

    async def wait_connected(self, timeout: float) -> bool:
        """True once any node is connected (within ``timeout``)."""
        waits = [asyncio.ensure_future(c.wait_connected(timeout)) for c in self.clients.values()]
        try:
            for done in asyncio.as_completed(waits):
                if await done:
                    return True
            return False
        finally:
            for w in waits:
                w.cancel()

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self.clients.values()))

    async def action(self, fields: dict, *, timeout: float | None = None, as_list: bool = False):
        channel = fields.get("Channel")
        connected = [(name, c) for name, c in self.clients.items() if c.connected]
        if not connected:
            raise AmiNotConnected(f"no Asterisk node is connected over AMI ({self.last_error})")
        if not channel:
            return await connected[0][1].action(fields, timeout=timeout, as_list=as_list)
        owner = self.node_of(channel)
        if owner is not None:
            return await self.clients[owner].action(fields, timeout=timeout, as_list=as_list)
        last: PbxError | None = None
        for name, client in connected:  # owner unknown: the node that knows the channel answers
            try:
                return await client.action(fields, timeout=timeout, as_list=as_list)
            except PbxError as exc:
                log.debug("AMI %s on node %s: %s", fields.get("Action"), name, exc)
                last = exc
        raise last  # type: ignore[misc]

    async def reload_module(self, module: str, **options) -> None:
        for client in self._connected_or_raise():
            await client.reload_module(module, **options)

    async def queue_reload(self, **options) -> None:
        for client in self._connected_or_raise():
            await client.queue_reload(**options)

    # -- nodes -----------------------------------------------------------------------------
    def node_of(self, uniqueid_or_channel: str) -> str | None:
        """The node a live channel (by ``Uniqueid``, or by name) was seen on, or None."""
        return self._owner.get(uniqueid_or_channel)

    def states(self) -> dict[str, str]:
        return {name: "connected" if c.connected else f"disconnected: {c.last_error}"
                for name, c in self.clients.items()}

    def on_connected(self, hook: ConnectedHook) -> None:
        """``await hook(node_name, client)`` after each (re)connection of a node."""
        self._hooks.append(hook)

    def _connected_or_raise(self) -> list[AmiClient]:
        clients = [c for c in self.clients.values() if c.connected]
        if not clients:
            raise AmiNotConnected(f"no Asterisk node is connected over AMI ({self.last_error})")
        return clients

    def _tracker(self, name: str) -> RawSubscriber:
        def track(headers: dict) -> None:
            uniqueid, channel = headers.get("Uniqueid"), headers.get("Channel")
            if not uniqueid:
                return
            if headers.get("Event") == "Hangup":
                self._owner.pop(uniqueid, None)
                if channel:
                    self._owner.pop(channel, None)
                return
            self._owner[uniqueid] = name
            if channel:
                self._owner[channel] = name

        return track

    def _node_connected(self, name: str, client: AmiClient) -> Callable[[], Awaitable[None]]:
        async def run_hooks() -> None:  # the client runs this in a task of its own after each login
            for hook in self._hooks:
                try:
                    await hook(name, client)
                except Exception:  # noqa: BLE001 - one failing hook must not stop the others
                    log.exception("on-connected hook for node %s failed", name)

        return run_hooks
