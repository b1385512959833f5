"""Thin asyncio adapter for FastAGI: sockets in, :mod:`gateway.pbx.agi` does the protocol.

Every read has a deadline and every end of stream is handled, so one bad peer
ends only its own session and never stalls the event loop (panoramisk's header
loop spins forever on a half header; ours cannot). Handlers get an
:class:`AgiSession`; :class:`AgiChannel` turns a session into the
:class:`gateway.ivr_flows.channel.CallChannel` the flow interpreter drives.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import posixpath
import re
import time
import traceback
from collections.abc import Awaitable, Callable

from gateway.errors import (
    ChannelHangup,
    GatewayError,
    LocalProtocolError,
    PbxError,
    RemoteProtocolError,
    SettingsError,
)
from gateway.ivr_flows.channel import Heard, Recording, SpeechUnavailable
from gateway.masking import mask_number, mask_text
from gateway.pbx import agi
from gateway.pbx.agi import AgiEnvironment, AgiEnvironmentParser, AgiReply, AgiReplyReader
from gateway.pbx.peers import parse_networks, peer_allowed

READ_CHUNK = 4096
RTT_KEPT = 1000


class AgiTimeout(PbxError):
    """Asterisk did not answer an AGI command (or send the environment) in time."""

    status_code = 504
    error_id = "agi-timeout"


class AgiSession:
    """One call: the environment plus serialized command/reply round trips."""

    def __init__(
        self,
        env: AgiEnvironment,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        read_timeout: float,
        initial: bytes = b"",
        session_id: str = "",
    ) -> None:
        self.env = env
        self.id = session_id or env.uniqueid
        self.read_timeout = read_timeout
        self.round_trip_times: list[float] = []  # seconds per command, the last RTT_KEPT
        self.timings: list[tuple[str, float]] = []  # (command verb, seconds), the last RTT_KEPT
        self._reader, self._writer = reader, writer
        self._replies = AgiReplyReader(initial)
        self._lock = asyncio.Lock()
        self._broken: str | None = None  # set after a timeout or EOF: the reply stream is out of sync

    @property
    def hung_up(self) -> bool:
        return self._replies.hung_up

    async def command(self, cmd: bytes, *, timeout: float | None = None) -> AgiReply:
        """Send one command built by :mod:`gateway.pbx.agi` and return its (200) reply."""
        if not isinstance(cmd, bytes) or not cmd.endswith(b"\n") or cmd.count(b"\n") != 1:
            raise LocalProtocolError("AGI command must be one line of bytes ending in \\n")
        async with self._lock:
            if self._broken:
                raise ChannelHangup(f"AGI session unusable: {self._broken}")
            loop = asyncio.get_running_loop()
            started = loop.time()
            try:
                async with asyncio.timeout(timeout or self.read_timeout):
                    self._writer.write(cmd)
                    await self._writer.drain()
                    reply = await self._read_reply()
            except TimeoutError:
                self._broken = "an earlier command timed out"
                verb = cmd.split(b" ")[0].strip().decode("ascii", "replace")
                raise AgiTimeout(f"no AGI reply to {verb} within {timeout or self.read_timeout} s") from None
            except ConnectionError as exc:
                self._broken = "connection lost"
                raise ChannelHangup(f"AGI connection lost: {exc}") from None
            except RemoteProtocolError:
                self._broken = "Asterisk broke the AGI protocol"
                raise
            elapsed = loop.time() - started
            self.round_trip_times.append(elapsed)
            self.timings.append((agi.command_verb(cmd), elapsed))
            if len(self.timings) > RTT_KEPT:
                del self.timings[0]
            if len(self.round_trip_times) > RTT_KEPT:
                del self.round_trip_times[0]
        return agi.check_reply(reply)

    async def _read_reply(self) -> AgiReply:
        while True:
            event = self._replies.next_reply()
            if isinstance(event, AgiReply):
                return event
            if event is agi.END_OF_STREAM:
                self._broken = "connection closed by Asterisk"
                raise ChannelHangup("AGI connection closed by Asterisk")
            self._replies.receive_data(await self._reader.read(READ_CHUNK))

    async def check_hangup(self, grace: float = 0.2) -> bool:
        """Has the channel hung up? Waits up to ``grace`` s for a ``HANGUP`` line
        that Asterisk sends just after a failing command's reply."""
        if self.hung_up or self._broken:
            return True
        async with self._lock:
            try:
                async with asyncio.timeout(grace):
                    while not self._replies.consume_hangup():
                        if self._replies.at_eof:
                            self._broken = "connection closed by Asterisk"
                            return True
                        self._replies.receive_data(await self._reader.read(READ_CHUNK))
            except TimeoutError:
                pass
            except ConnectionError:
                self._broken = "connection lost"
                return True
        return self.hung_up


Handler = Callable[[AgiSession], Awaitable[None]]


class FastAgiServer:
    """Accept FastAGI connections from ``allowed_peers`` and run ``handler(session)`` per call."""

    def __init__(
        self,
        handler: Handler,
        *,
        host: str,
        port: int,
        allowed_peers: tuple[str, ...],
        read_timeout: float = 30.0,
        header_timeout: float = 5.0,
        logger: logging.Logger | None = None,
        stop_grace: float = 5.0,
    ) -> None:
        if not callable(handler):
            raise SettingsError("FastAGI handler must be an async callable")
        try:
            self._allowed = parse_networks(allowed_peers)
        except (TypeError, ValueError) as exc:
            raise SettingsError(f"bad FastAGI allowed_peers {allowed_peers!r}: {exc}") from None
        self._handler = handler
        self._host, self._requested_port = host, port
        self.read_timeout, self.header_timeout, self.stop_grace = read_timeout, header_timeout, stop_grace
        self._log = logger or logging.getLogger(__name__)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()
        self._ids = itertools.count(1)
        self.accepted = self.refused = self.protocol_errors = self.completed = 0
        self.hangups = self.handler_errors = self.timeouts = 0

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            raise GatewayError("FastAGI server is not started")
        return self._server.sockets[0].getsockname()[1]

    @property
    def sessions(self) -> int:
        return len(self._tasks)

    def counters(self) -> dict[str, int]:
        return {
            "accepted": self.accepted, "refused": self.refused, "protocol_errors": self.protocol_errors,
            "completed": self.completed, "hangups": self.hangups, "handler_errors": self.handler_errors,
            "timeouts": self.timeouts, "sessions": self.sessions,
        }  # fmt: skip

    async def start(self) -> None:
        if self._server is not None:
            raise GatewayError("FastAGI server already started")
        self._server = await asyncio.start_server(self._on_connect, self._host, self._requested_port)
        self._log.info("FastAGI listening on %s:%d", self._host, self.port)

    async def stop(self, grace: float | None = None) -> None:
        """Stop listening, let sessions finish for ``grace`` s, then cancel the rest."""
        if self._server is None:
            return
        self._server.close()
        tasks = set(self._tasks)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self.stop_grace if grace is None else grace)
            for task in pending:
                task.cancel()
            if pending:
                self._log.warning("FastAGI stop: cancelled %d session(s) after grace period", len(pending))
                await asyncio.wait(pending, timeout=5.0)
        await self._server.wait_closed()
        self._server = None

    def _peer_allowed(self, peer: object) -> bool:
        return peer_allowed(peer, self._allowed)

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sid = f"agi-{next(self._ids)}"
        peer = writer.get_extra_info("peername")
        if not self._peer_allowed(peer):
            self.refused += 1
            self._log.warning("FastAGI %s: refused connection from %s: peer not in allowed_peers", sid, peer)
            await self._close(writer)
            return
        self.accepted += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._run_session(sid, reader, writer)
        finally:
            self._tasks.discard(task)
            await self._close(writer)

    async def _run_session(self, sid: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            parser = AgiEnvironmentParser()
            async with asyncio.timeout(self.header_timeout):
                env = None
                while env is None:
                    env = parser.receive_data(await reader.read(READ_CHUNK))
        except TimeoutError:
            self.timeouts += 1
            self._log.warning("FastAGI %s: no complete AGI environment within %s s", sid, self.header_timeout)
            return
        except RemoteProtocolError as exc:
            self.protocol_errors += 1
            self._log.warning("FastAGI %s: bad AGI environment: %s", sid, mask_text(str(exc)))
            return
        except ConnectionError as exc:
            self.protocol_errors += 1
            self._log.warning("FastAGI %s: connection lost during AGI environment: %s", sid, exc)
            return
        session = AgiSession(
            env, reader, writer, read_timeout=self.read_timeout, initial=parser.trailing_data, session_id=sid
        )
        self._log.info(
            "FastAGI %s: call uid=%s script=%s caller=%s",
            sid, env.uniqueid, env.network_script, mask_number(env.callerid),
        )  # fmt: skip
        try:
            await self._handler(session)
        except ChannelHangup as exc:
            self.hangups += 1
            self._log.info("FastAGI %s: caller hung up: %s", sid, mask_text(str(exc)))
        except RemoteProtocolError as exc:
            self.protocol_errors += 1
            self._log.warning("FastAGI %s: protocol error from Asterisk: %s", sid, mask_text(str(exc)))
        except AgiTimeout as exc:
            self.timeouts += 1
            self._log.warning("FastAGI %s: %s", sid, mask_text(str(exc)))
        except Exception as exc:  # noqa: BLE001 - a failing flow ends only its own call
            self.handler_errors += 1
            text = "".join(traceback.format_exception(exc))
            self._log.error("FastAGI %s: handler failed:\n%s", sid, mask_text(text))
        else:
            self.completed += 1

    async def _close(self, writer: asyncio.StreamWriter) -> None:
        writer.close()
        try:
            async with asyncio.timeout(1.0):
                await writer.wait_closed()
        except (TimeoutError, ConnectionError, OSError):
            pass


# --------------------------------------------------------------------------- CallChannel

_NAME = re.compile(r"[A-Za-z0-9._-]+")
_QUEUE = re.compile(r"[A-Za-z0-9_-]+")
_KEYS = re.compile(r"[0-9*#]*")
MAX_LENGTH_SLACK_MS = 250
WATCH_SLICE_MS = 100  # one WAIT FOR DIGIT of the key watch; the longest a command waits for it to step aside
MAX_CAUGHT = 8  # keys the watch keeps for the flow (type-ahead across menus), the rest are ignored
_REMEMBERED = re.compile(r"GW_IVR|GW_CHOICE_[A-Z]+")


def _pressed(result: str) -> str:
    """The key of a STREAM FILE / WAIT FOR DIGIT result ('0' = none, else the key's ASCII code)."""
    if not re.fullmatch(r"[0-9]{1,3}", result or ""):
        raise RemoteProtocolError(f"a key result must be an ASCII code, got {result[:40]!r}")
    code = int(result)
    if code == 0:
        return ""
    key = chr(code)
    if not _KEYS.fullmatch(key):
        raise RemoteProtocolError(f"a key result must be 0-9, * or #, got code {code}")
    return key


class AgiChannel:
    """:class:`~gateway.ivr_flows.channel.CallChannel` over one FastAGI session.

    ``prompt_path`` maps a prompt id to the path Asterisk plays (no extension);
    ``recording_dir_pbx`` is the recording directory as Asterisk sees it.
    """

    def __init__(
        self,
        session: AgiSession,
        prompt_path: Callable[[str], str],
        recording_dir_pbx: str,
        *,
        play_timeout: float = 300.0,
        logger: logging.Logger | None = None,
        listener=None,
    ) -> None:
        self._listener = listener  # gateway.pbx.speech.Listener, or None: no live speech
        self._session = session
        self._prompt_path = prompt_path
        self._recording_dir = recording_dir_pbx.rstrip("/") or "/"
        self._play_timeout = play_timeout
        self._log = logger or logging.getLogger(__name__)
        self._finished: str | None = None
        # The key watch (see watch_keys): the keys it listens for ('' = off), its task, and
        # the keys it caught that the flow has not taken yet.
        self._watch_keys = ""
        self._watch: tuple[asyncio.Task, asyncio.Event] | None = None
        self._caught = ""

    @property
    def finished(self) -> str | None:
        """Why the call left the gateway (transferred to a queue, hung up), or None while it is here."""
        return self._finished

    async def _command(self, cmd: bytes, *, timeout: float | None = None) -> AgiReply:
        if self._finished:
            raise ChannelHangup(f"call already {self._finished}")
        if self._watch is None:
            return await self._session.command(cmd, timeout=timeout)
        await self._pause_watch()  # one AGI command at a time: the watch steps aside ...
        try:
            return await self._session.command(cmd, timeout=timeout)
        finally:
            self._resume_watch()  # ... and listens again after a command that reads no keys

    # -- keys between commands ---------------------------------------------------------
    #
    # Asterisk reads the channel while an AGI session waits for its next command and frees
    # every frame it reads there, DTMF included (res_agi's run_agi idle loop: ast_read then
    # ast_frfree). A key that ends (RFC 4733 end / DTMF_END) while the gateway is between two
    # commands -- writing the menu path to the database, asking a speech worker for a
    # recogniser stream, starting EXEC AudioSocket -- is gone. So between a prompt and the
    # menu that reads its answer the flow turns on the *key watch*: WAIT FOR DIGIT in short
    # slices, one after another, until the flow's next command; keys caught are kept for
    # take_keys(). A command that reads no keys (SET VARIABLE, a plain prompt) pauses the
    # watch for its length; one that reads keys (a menu, a recording, a listening step, a
    # transfer) ends it. What is left is one AGI round trip between slices.

    def watch_keys(self, keys: str) -> None:
        """Listen for ``keys`` while the flow works between commands (until take_keys())."""
        self._watch_keys = keys
        self._resume_watch()

    async def take_keys(self) -> str:
        """End the key watch; return the keys it caught (oldest first) and forget them."""
        await self._stop_watching()
        keys, self._caught = self._caught, ""
        return keys

    async def _stop_watching(self) -> None:
        self._watch_keys = ""
        await self._pause_watch()

    def _resume_watch(self) -> None:
        if not self._watch_keys or self._watch is not None or self._finished or self._session.hung_up:
            return
        stop = asyncio.Event()
        self._watch = (asyncio.ensure_future(self._watch_loop(self._watch_keys, stop)), stop)

    async def _pause_watch(self) -> None:
        if self._watch is None:
            return
        (task, stop), self._watch = self._watch, None
        stop.set()
        await asyncio.gather(task, return_exceptions=True)  # at most one slice (WATCH_SLICE_MS)

    async def _watch_loop(self, keys: str, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                reply = await self._session.command(agi.wait_for_digit(WATCH_SLICE_MS), timeout=30.0)
            except Exception:  # noqa: BLE001 - hung up, or the session broke or closed: the flow's next command says so
                return
            code = reply.result_int
            if code is None or code < 0:
                return
            if code > 0 and chr(code) in keys and len(self._caught) < MAX_CAUGHT:
                self._caught += chr(code)

    async def _failed(self, what: str) -> None:
        """A result=-1: a hangup raises ChannelHangup, anything else is only logged."""
        if await self._session.check_hangup():
            raise ChannelHangup(f"caller hung up during {what}")
        self._log.warning("AGI %s: %s failed (result=-1; missing sound file?)", self._session.id, what)

    async def play(self, prompt_id: str, *, keys: str = "", interruptible: bool = True) -> str:
        """STREAM FILE; with ``keys`` a key pressed stops it (result = the key's ASCII code) and is
        returned; a prompt that is not ``interruptible`` then resumes at ``endpos`` to its end."""
        path = self._prompt_path(prompt_id)
        if keys:
            await self._stop_watching()  # this prompt reads the keys itself
        reply = await self._command(agi.stream_file(path, keys), timeout=self._play_timeout)
        if reply.result == "-1":
            await self._failed(f"play {prompt_id!r}")
            return ""
        key = _pressed(reply.result) if keys else ""
        if key and key not in keys:
            raise RemoteProtocolError(f"STREAM FILE returned key {key!r} that was not asked for")
        if key and not interruptible:
            rest = await self._command(agi.stream_file(path, "", reply.endpos or 0), timeout=self._play_timeout)
            if rest.result == "-1":
                await self._failed(f"play {prompt_id!r} to its end")
        return key

    async def collect_digits(self, prompt_id: str, *, max_digits: int, timeout: float) -> str:
        """GET DATA; a timeout returns the keys typed so far (maybe '')."""
        path = self._prompt_path(prompt_id)
        await self._stop_watching()
        cmd = agi.get_data(path, max(1, int(timeout * 1000)), max_digits)
        reply = await self._command(cmd, timeout=timeout + 120.0)
        if reply.result == "-1":
            await self._failed(f"collect digits with {prompt_id!r}")
            return ""
        if not _KEYS.fullmatch(reply.result):
            raise RemoteProtocolError(f"GET DATA returned non-key result {reply.result[:40]!r}")
        return reply.result

    async def record(
        self, name: str, *, max_seconds: float, silence_seconds: float, beep_prompt_id: str | None
    ) -> Recording:
        """RECORD FILE <dir>/<name> wav "#" <ms> s=<n>.

        How it ended, from the reply: ``(writefile)`` (Asterisk could not create the file, e.g. a
        full disk) -> "write_failed" (the flow goes on; the recording guard flags the ticket);
        ``result=-1`` (e.g. ``(hangup)``) -> "hangup",
        returned rather than raised so the audio is kept (the next command raises);
        ``(dtmf)`` with result 35 ('#') -> "dtmf"; ``(timeout)`` is sent both at the
        maximum length and after silence (Asterisk then trims the silence), so it is
        "max_length" when the audio reaches the maximum (less 250 ms), else "silence".
        A bare ``result=0`` (some versions, on silence) -> "silence".
        """
        if not isinstance(name, str) or not _NAME.fullmatch(name) or name in (".", ".."):
            raise LocalProtocolError(f"bad recording name {name!r}")
        await self._stop_watching()
        if beep_prompt_id:
            await self.play(beep_prompt_id)
        path = posixpath.join(self._recording_dir, name)
        max_ms = max(1, int(max_seconds * 1000))
        silence = int(round(silence_seconds)) if silence_seconds and silence_seconds > 0 else None
        cmd = agi.record_file(path, "wav", "#", max_ms, silence_s=max(1, silence) if silence else None)
        started = time.monotonic()
        reply = await self._command(cmd, timeout=max_seconds + self._session.read_timeout)
        elapsed_ms = (time.monotonic() - started) * 1000
        if reply.data == "writefile":  # e.g. a full disk: the flow goes on, the ticket is flagged
            self._log.warning("AGI %s: Asterisk could not write recording %s", self._session.id, path)
            return Recording(path=path, fmt="wav", duration_ms=0, ended_by="write_failed")
        duration_ms = max(0, reply.endpos or 0) // 8
        code = reply.result_int
        if code == -1 or reply.data in ("hangup", "waitfor"):
            ended_by = "hangup"
            if not await self._session.check_hangup():
                self._log.warning("AGI %s: recording %s ended with %s", self._session.id, name, reply)
        elif reply.data == "dtmf" or (code is not None and code > 0 and chr(code) in "0123456789*#"):
            ended_by = "dtmf"
        elif self._session.hung_up:
            ended_by = "hangup"
        elif reply.data == "timeout" and max(duration_ms, elapsed_ms) >= max_ms - MAX_LENGTH_SLACK_MS:
            ended_by = "max_length"
        else:
            ended_by = "silence"
        return Recording(path=path, fmt="wav", duration_ms=duration_ms, ended_by=ended_by)

    def can_listen(self, language: str) -> bool:
        return self._listener is not None and self._listener.can_listen(language)

    async def listen(self, name: str | None, **kwargs) -> Heard:
        """A listening step over AudioSocket (see :mod:`gateway.pbx.speech`)."""
        if self._listener is None:
            raise SpeechUnavailable("no speech recogniser configured")
        if name is not None and (not isinstance(name, str) or not _NAME.fullmatch(name) or name in (".", "..")):
            raise LocalProtocolError(f"bad recording name {name!r}")
        if self._finished:
            raise ChannelHangup(f"call already {self._finished}")
        if name is not None:  # a description: '#' ends it; nothing to catch before it starts
            await self._stop_watching()
            return await self._listener.listen(self._session, name, **kwargs)
        # A menu: keep listening for its keys while the recogniser stream opens (a worker
        # round trip); the listener asks for them just before EXEC AudioSocket, whose own
        # DTMF frames then carry any later key. If no stream can be had, the watch stops and
        # what it caught stays for take_keys(): the flow's key fallback takes it.
        self.watch_keys(kwargs.get("end_keys") or "")
        try:
            return await self._listener.listen(self._session, name, keys_first=self._first_caught, **kwargs)
        finally:
            await self._stop_watching()

    async def _first_caught(self) -> str:
        """For the listener: end the watch; the first key it caught (the rest stay caught)."""
        await self._stop_watching()
        key, self._caught = self._caught[:1], self._caught[1:]
        return key

    async def transfer_to_queue(
        self, queue: str, *, wait_seconds: int | None = None, overflow_queue: str | None = None
    ) -> None:
        """Leave GW_ACTION=queue and GW_QUEUE (+ GW_QUEUE_WAIT, GW_OVERFLOW_QUEUE) for the dialplan."""
        for name in (queue, overflow_queue):
            if name is not None and (not isinstance(name, str) or not _QUEUE.fullmatch(name)):
                raise LocalProtocolError(f"bad queue name {name!r}")
        await self._stop_watching()
        if overflow_queue:
            await self._command(agi.set_variable("GW_QUEUE_WAIT", str(int(wait_seconds or 30))))
            await self._command(agi.set_variable("GW_OVERFLOW_QUEUE", overflow_queue))
        await self._command(agi.set_variable("GW_ACTION", "queue"))
        await self._command(agi.set_variable("GW_QUEUE", queue))
        self._finished = "transferred to a queue"

    async def remember(self, values: dict[str, str]) -> None:
        """SET VARIABLE for each of the fail-safe's variables (``GW_IVR``, ``GW_CHOICE_*``): the
        dialplan routes by them if this gateway is lost mid-call (see gateway.pbx.dialplan)."""
        for name, value in values.items():
            if not _REMEMBERED.fullmatch(name):
                raise LocalProtocolError(f"not a fail-safe variable: {name!r}")
            if name == "GW_CHOICE_QUEUE" and value and not _QUEUE.fullmatch(value):
                raise LocalProtocolError(f"bad queue name {value!r}")
            await self._command(agi.set_variable(name, value))

    async def hangup(self) -> None:
        """SET VARIABLE GW_ACTION hangup, then HANGUP; a channel already gone is fine."""
        await self._stop_watching()
        try:
            await self._command(agi.set_variable("GW_ACTION", "hangup"))
            await self._command(agi.hangup())
        except ChannelHangup:
            pass
        self._finished = "hung up"
