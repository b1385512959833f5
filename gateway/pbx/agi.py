"""The AGI protocol as a pure module: bytes in, typed values out, commands as bytes.

Theory of operation
-------------------
A FastAGI session is one TCP connection per call. Asterisk speaks first:

1. **Environment.** Lines ``agi_<name>: <value>`` end with one empty line.
   :class:`AgiEnvironmentParser` buffers what it is fed (``receive_data``) and
   returns an :class:`AgiEnvironment` once the empty line has arrived. Bytes fed
   after the empty line are kept in ``trailing_data`` for the reply reader.
2. **Commands and replies.** We send one command line (built only by the typed
   builders below, which validate and quote every argument) and Asterisk sends
   one reply: ``200 result=<r> [(<data>)] [key=value ...]``, or ``510``/``511``
   single lines, or a ``520-`` block ended by ``520 End of proper usage.``.
   ``100 result=0 Trying...`` is provisional (GOSUB) and is skipped. The bare
   line ``HANGUP`` is sent once when the channel hangs up; it can arrive before
   or after any reply. :class:`AgiReplyReader` notes it (``hung_up``) and goes
   on to the real reply.
3. **Errors.** :func:`check_reply` is the one place that maps result codes to
   exceptions (510 -> :class:`AgiCommandError`, 511 -> ``ChannelHangup``,
   520 -> :class:`AgiUsageError`). ``result=-1`` is *not* mapped here: what it
   means depends on the command, so the channel decides.

Nothing here does I/O. Malformed input from Asterisk raises
``RemoteProtocolError`` (that session ends); a bad argument from our side raises
``LocalProtocolError``. Every buffer is bounded and refused as soon as it
outgrows its limit, without waiting for a newline.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit

from gateway.errors import ChannelHangup, LocalProtocolError, PbxError, RemoteProtocolError

MAX_LINE: Final = 4096
MAX_HEADER_BYTES: Final = 64 * 1024
MAX_HEADER_LINES: Final = 200
MAX_USAGE_LINES: Final = 200
MAX_COMMAND_BYTES: Final = 2048  # res_agi reads commands into a 2048-byte buffer (AGI_BUF_LEN)


class AgiCommandError(PbxError):
    """Asterisk refused a command (510 unknown command, 503, or another non-200 code)."""

    error_id = "agi-command-error"


class AgiUsageError(LocalProtocolError):
    """520: Asterisk says our command had a bad syntax (a bug on our side)."""


class NEED_DATA:  # noqa: N801 - h11-style sentinel class
    """``next_reply()``: feed more bytes."""


class END_OF_STREAM:  # noqa: N801
    """``next_reply()``: the peer closed the connection cleanly between replies."""



@dataclass(frozen=True)
class AgiEnvironment:
    """The ``agi_*`` variables Asterisk sent; ``raw`` holds them all, keys as sent."""

    raw: dict[str, str]

    def __post_init__(self) -> None:
        for key in self.raw:
            if not key.startswith("agi_"):
                raise RemoteProtocolError(f"AGI environment key {key!r} does not start with agi_")

    def get(self, name: str, default: str = "") -> str:
        return self.raw.get(name if name.startswith("agi_") else f"agi_{name}", default)

    def _value(name: str, *, unknown_is_empty: bool = False) -> property:  # noqa: N805
        def read(self: AgiEnvironment) -> str:
            value = self.raw.get(f"agi_{name}", "")
            return "" if unknown_is_empty and value == "unknown" else value

        return property(read, doc=f"``agi_{name}`` ('' when absent)")

    uniqueid = _value("uniqueid")
    channel = _value("channel")
    callerid = _value("callerid", unknown_is_empty=True)  # Asterisk sends 'unknown' for none
    calleridname = _value("calleridname", unknown_is_empty=True)
    extension = _value("extension")
    context = _value("context")
    request = _value("request")
    del _value

    @property
    def network_script(self) -> str:
        """Path part of the ``agi://host:port/<script>`` URL, without the leading '/'."""
        if "agi_network_script" in self.raw:
            return self.raw["agi_network_script"]
        return urlsplit(self.request).path.lstrip("/")

    @property
    def args(self) -> list[str]:
        """``agi_arg_1`` .. ``agi_arg_N``, stopping at the first gap."""
        out: list[str] = []
        while f"agi_arg_{len(out) + 1}" in self.raw:
            out.append(self.raw[f"agi_arg_{len(out) + 1}"])
        return out


class AgiEnvironmentParser:
    """Incremental parser of the environment block; ``receive_data(b'')`` means end of stream."""

    def __init__(
        self, *, max_line: int = MAX_LINE, max_bytes: int = MAX_HEADER_BYTES, max_lines: int = MAX_HEADER_LINES
    ) -> None:
        self._lines = _Lines(b"", max_line, "AGI environment")
        self._values: dict[str, str] = {}
        self._max_bytes, self._max_lines = max_bytes, max_lines
        self._consumed = 0  # bytes of complete lines taken from the buffer
        self._count = 0
        self.environment: AgiEnvironment | None = None
        self.trailing_data = b""

    def receive_data(self, data: bytes) -> AgiEnvironment | None:
        if self.environment is not None:
            raise LocalProtocolError("AGI environment already complete")
        if not data:
            raise RemoteProtocolError(f"connection closed inside the AGI environment after {self._count} line(s)")
        self._lines.buffer += data
        while True:
            before = len(self._lines.buffer)
            line = self._lines.pop()
            self._consumed += before - len(self._lines.buffer)
            if self._consumed + len(self._lines.buffer) > self._max_bytes:
                raise RemoteProtocolError(f"AGI environment larger than {self._max_bytes} bytes")
            if line is None:
                return None
            if line == b"":
                if not self._values:
                    raise RemoteProtocolError("empty AGI environment")
                self.environment = AgiEnvironment(dict(self._values))
                self.trailing_data = bytes(self._lines.buffer)
                return self.environment
            self._count += 1
            if self._count > self._max_lines:
                raise RemoteProtocolError(f"AGI environment has more than {self._max_lines} lines")
            self._add(_decode(line, "AGI environment"))

    def _add(self, line: str) -> None:
        key, sep, value = line.partition(":")
        key = key.strip()
        if not sep:
            raise RemoteProtocolError(f"AGI environment line without ':': {line[:80]!r}")
        if not key.startswith("agi_") or len(key) == 4:
            raise RemoteProtocolError(f"AGI environment key {key[:80]!r} does not start with agi_")
        if key in self._values:
            raise RemoteProtocolError(f"AGI environment key {key!r} sent twice")
        self._values[key] = value.strip()


def _decode(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RemoteProtocolError(f"{what} is not UTF-8: {exc}") from None


class _Lines:
    """Bounded line splitter: refuses a line over ``max_line`` bytes as soon as it is buffered."""

    def __init__(self, initial: bytes, max_line: int, what: str) -> None:
        self.buffer, self.max_line, self.what = bytearray(initial), max_line, what

    def pop(self) -> bytes | None:
        """Next line without its CR LF, or None until a newline arrives."""
        newline = self.buffer.find(b"\n")
        if (newline < 0 and len(self.buffer) > self.max_line) or newline > self.max_line:
            raise RemoteProtocolError(f"{self.what} line longer than {self.max_line} bytes")
        if newline < 0:
            return None
        line = bytes(self.buffer[:newline]).rstrip(b"\r")
        del self.buffer[: newline + 1]
        return line



@dataclass(frozen=True)
class AgiReply:
    """One reply. ``data`` is the parenthesised part; ``message`` the free text
    (the text of a non-200 line, the usage of a 520 block, 'Gosub complete')."""

    code: int
    result: str = ""
    data: str | None = None
    endpos: int | None = None
    extra: dict[str, str] = field(default_factory=dict)
    message: str = ""

    def __post_init__(self) -> None:
        if not 100 <= self.code <= 599:
            raise RemoteProtocolError(f"AGI reply code {self.code} out of range")

    @property
    def result_int(self) -> int | None:
        try:
            return int(self.result)
        except ValueError:
            return None


_CODE_LINE = re.compile(r"(?P<code>[1-5]\d\d)(?P<sep>[ -]|$)(?P<rest>.*)", re.DOTALL)
_KEY_VALUE = re.compile(r"(?P<key>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>\S*)")


def parse_reply(line: bytes) -> AgiReply:
    """Parse one reply line (without or with its newline). For a ``520-`` block
    this returns only the first line; use :class:`AgiReplyReader` for the whole."""
    return _parse_line(line)[0]


def _parse_line(line: bytes) -> tuple[AgiReply, bool]:
    if len(line) > MAX_LINE:
        raise RemoteProtocolError(f"AGI reply line longer than {MAX_LINE} bytes")
    text = _decode(line.rstrip(b"\n").rstrip(b"\r"), "AGI reply")
    match = _CODE_LINE.fullmatch(text)
    if match is None:
        raise RemoteProtocolError(f"not an AGI reply: {text[:80]!r}")
    code, rest = int(match["code"]), match["rest"]
    if match["sep"] == "-":
        return AgiReply(code=code, message=rest), True
    if code not in (100, 200):
        result, message = "", rest
        if rest.startswith("result="):  # e.g. "503 result=-2 Memory allocation failure"
            result, _, message = rest[len("result=") :].partition(" ")
        return AgiReply(code=code, result=result, message=message), False
    if not rest.startswith("result="):
        raise RemoteProtocolError(f"AGI {code} reply without result=: {text[:80]!r}")
    result, _, rest = rest[len("result=") :].partition(" ")
    data: str | None = None
    if rest.startswith("("):
        close = rest.rfind(")")
        if close < 0:
            raise RemoteProtocolError(f"unbalanced '(' in AGI reply: {text[:80]!r}")
        data, rest = rest[1:close], rest[close + 1 :]
    pairs = [_KEY_VALUE.fullmatch(token) for token in rest.split()]
    extra = {kv["key"]: kv["value"] for kv in pairs if kv}
    words = [token for token, kv in zip(rest.split(), pairs) if not kv]
    endpos = None
    if "endpos" in extra:
        try:
            endpos = int(extra.pop("endpos"))
        except ValueError:
            raise RemoteProtocolError(f"bad endpos in AGI reply: {text[:80]!r}") from None
    reply = AgiReply(code, result, data, endpos, extra, message=" ".join(words))
    return reply, False


class AgiReplyReader:
    """Incremental reader of replies; ``receive_data(b'')`` means end of stream.

    ``next_reply()`` returns an :class:`AgiReply`, ``NEED_DATA`` or
    ``END_OF_STREAM`` (closed cleanly between replies). ``HANGUP`` lines and
    provisional ``100`` replies are consumed on the way and never returned.
    """

    def __init__(self, initial: bytes = b"", *, max_line: int = MAX_LINE) -> None:
        self._lines = _Lines(initial, max_line, "AGI reply")
        self._eof = False
        self._usage: list[str] | None = None  # lines of an open 520- block
        self._usage_first = ""
        self.hung_up = False

    @property
    def at_eof(self) -> bool:
        return self._eof

    def receive_data(self, data: bytes) -> None:
        if self._eof and data:
            raise LocalProtocolError("data received after end of stream")
        self._eof = self._eof or not data
        self._lines.buffer += data

    def consume_hangup(self) -> bool:
        """Consume complete ``HANGUP`` lines at the head of the buffer; return ``hung_up``."""
        buffer = self._lines.buffer
        while self._usage is None and (buffer.startswith(b"HANGUP\n") or buffer.startswith(b"HANGUP\r\n")):
            self._lines.pop()
            self.hung_up = True
        return self.hung_up

    def next_reply(self) -> AgiReply | type[NEED_DATA] | type[END_OF_STREAM]:
        while True:
            line = self._lines.pop()
            if line is None:
                if self._eof:
                    if self._lines.buffer or self._usage is not None:
                        raise RemoteProtocolError("connection closed in the middle of an AGI reply")
                    return END_OF_STREAM
                return NEED_DATA
            if line == b"HANGUP" and self._usage is None:
                self.hung_up = True
                continue
            if self._usage is not None:
                if line.startswith(b"520 "):
                    usage = "\n".join([self._usage_first, *self._usage])
                    self._usage = None
                    return AgiReply(code=520, message=usage)
                if len(self._usage) >= MAX_USAGE_LINES:
                    raise RemoteProtocolError(f"AGI 520 usage longer than {MAX_USAGE_LINES} lines")
                self._usage.append(_decode(line, "AGI usage text"))
                continue
            reply, continued = _parse_line(line)
            if continued:
                if reply.code != 520:
                    raise RemoteProtocolError(f"unexpected multi-line AGI reply {reply.code}")
                self._usage, self._usage_first = [], reply.message
                continue
            if reply.code == 100:
                continue
            return reply


def check_reply(reply: AgiReply) -> AgiReply:
    """The one mapping from AGI result codes to exceptions; returns 200 replies as they are."""
    if reply.code == 200:
        return reply
    if reply.code == 511:
        raise ChannelHangup(f"AGI 511: {reply.message or 'command not permitted on a dead channel'}")
    if reply.code == 520:
        raise AgiUsageError(f"AGI 520: invalid command syntax: {reply.message}")
    raise AgiCommandError(f"AGI {reply.code}: {reply.message}", details={"code": reply.code})


_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DIGITS = re.compile(r"[0-9*#]*")
_APP = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_PATH = re.compile(r".+", re.DOTALL)
_FORMAT = re.compile(r"[a-z0-9]+")
_NEEDS_QUOTES = re.compile(r'[\s"\\]')


def quote(arg: str) -> str:
    """Quote one argument the way res_agi's parse_args() splits them."""
    if not isinstance(arg, str):
        raise LocalProtocolError(f"AGI argument must be str, not {type(arg).__name__}")
    if any(ch in arg for ch in "\n\r\0"):
        raise LocalProtocolError("AGI argument contains a newline, CR or NUL")
    if arg and not _NEEDS_QUOTES.search(arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _command(words: str, *args: str) -> bytes:
    line = " ".join([words, *(quote(a) for a in args)]) + "\n"
    encoded = line.encode("utf-8")
    if len(encoded) > MAX_COMMAND_BYTES:
        raise LocalProtocolError(f"AGI command longer than {MAX_COMMAND_BYTES} bytes")
    return encoded


def _number(value: int, name: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise LocalProtocolError(f"{name} must be a non-negative int, got {value!r}")
    return str(value)


def _checked(value: str, pattern: re.Pattern[str], what: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise LocalProtocolError(f"bad {what}: {value!r} (must match {pattern.pattern})")
    return value


def answer() -> bytes:
    return _command("ANSWER")


def hangup() -> bytes:
    return _command("HANGUP")


def stream_file(path: str, escape_digits: str = "", offset: int | None = None) -> bytes:
    """``STREAM FILE path digits [offset]``: ``offset`` (samples) resumes where a key stopped it."""
    args = [_checked(path, _PATH, "path"), _checked(escape_digits, _DIGITS, "digits")]
    if offset is not None:
        args.append(_number(offset, "offset"))
    return _command("STREAM FILE", *args)


def get_data(path: str, timeout_ms: int, max_digits: int) -> bytes:
    numbers = _number(timeout_ms, "timeout_ms"), _number(max_digits, "max_digits")
    return _command("GET DATA", _checked(path, _PATH, "path"), *numbers)


def wait_for_digit(timeout_ms: int) -> bytes:
    return _command("WAIT FOR DIGIT", _number(timeout_ms, "timeout_ms"))


def record_file(
    path: str, fmt: str, escape_digits: str, timeout_ms: int, silence_s: int | None = None, beep: bool = False
) -> bytes:
    """RECORD FILE; ``silence_s`` (whole seconds) becomes ``s=N``. res_agi treats any
    argument after the timeout that is neither a number nor ``s=`` as BEEP."""
    args = [_checked(path, _PATH, "path"), _checked(fmt, _FORMAT, "format")]
    args += [_checked(escape_digits, _DIGITS, "digits"), _number(timeout_ms, "timeout_ms")]
    if beep:
        args.append("BEEP")
    if silence_s is not None:
        args.append("s=" + _number(silence_s, "silence_s"))
    return _command("RECORD FILE", *args)


def set_variable(name: str, value: str) -> bytes:
    return _command("SET VARIABLE", _checked(name, _VARIABLE, "variable name"), value)


def get_variable(name: str) -> bytes:
    return _command("GET VARIABLE", _checked(name, _VARIABLE, "variable name"))


def exec_(app: str, *args: str) -> bytes:
    """EXEC runs ``app`` with its arguments joined by ',' into one AGI argument."""
    _checked(app, _APP, "application name")
    for arg in args:
        quote(arg)
        if "," in arg:
            raise LocalProtocolError(f"application argument {arg!r} contains ','")
    return _command("EXEC", app, ",".join(args)) if args else _command("EXEC", app)


def verbose(msg: str, level: int = 1) -> bytes:
    if _number(level, "level") not in ("1", "2", "3", "4"):
        raise LocalProtocolError(f"verbose level must be 1-4, got {level!r}")
    return _command("VERBOSE", msg, str(level))


_VERBS = ("STREAM FILE", "GET DATA", "RECORD FILE", "SET VARIABLE", "GET VARIABLE", "WAIT FOR DIGIT")


def command_verb(cmd: bytes) -> str:
    """The command's name for metrics: ``b'GET DATA /x 5000 1\\n'`` -> ``'GET DATA'``."""
    text = cmd.decode("ascii", "replace").strip().upper()
    for verb in _VERBS:
        if text.startswith(verb):
            return verb
    return text.split(" ", 1)[0] or "?"
