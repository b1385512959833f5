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


class _Sentinel:
    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


NEED_DATA: Final = _Sentinel("NEED_DATA")
END_OF_STREAM: Final = _Sentinel("END_OF_STREAM")


# --------------------------------------------------------------------------- environment


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

    @property
    def uniqueid(self) -> str:
        return self.get("uniqueid")

    @property
    def channel(self) -> str:
        return self.get("channel")

    @property
    def callerid(self) -> str:
        """Caller number; '' when Asterisk reports none ('unknown')."""
        value = self.get("callerid")
        return "" if value == "unknown" else value

    @property
    def calleridname(self) -> str:
        value = self.get("calleridname")
        return "" if value == "unknown" else value

    @property
    def extension(self) -> str:
        return self.get("extension")

    @property
    def context(self) -> str:
        return self.get("context")

    @property
    def request(self) -> str:
        return self.get("request")

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
        self,
        *,
        max_line: int = MAX_LINE,
        max_bytes: int = MAX_HEADER_BYTES,
        max_lines: int = MAX_HEADER_LINES,
    ) -> None:
        self._buffer = bytearray()
        self._values: dict[str, str] = {}
        self._max_line, self._max_bytes, self._max_lines = max_line, max_bytes, max_lines
        self._total = 0
        self._lines = 0
        self.environment: AgiEnvironment | None = None
        self.trailing_data = b""

    def receive_data(self, data: bytes) -> AgiEnvironment | None:
        if self.environment is not None:
            raise LocalProtocolError("AGI environment already complete")
        if not data:
            raise RemoteProtocolError(
                f"connection closed inside the AGI environment after {self._lines} line(s)"
            )
        self._buffer += data
        while True:
            newline = self._buffer.find(b"\n")
            if newline < 0:
                if len(self._buffer) > self._max_line:
                    raise RemoteProtocolError(f"AGI environment line longer than {self._max_line} bytes")
                if self._total + len(self._buffer) > self._max_bytes:
                    raise RemoteProtocolError(f"AGI environment larger than {self._max_bytes} bytes")
                return None
            raw_line = bytes(self._buffer[:newline])
            del self._buffer[: newline + 1]
            self._total += newline + 1
            if newline > self._max_line:
                raise RemoteProtocolError(f"AGI environment line longer than {self._max_line} bytes")
            if self._total > self._max_bytes:
                raise RemoteProtocolError(f"AGI environment larger than {self._max_bytes} bytes")
            line = _decode(raw_line.rstrip(b"\r"), "AGI environment")
            if line == "":
                if not self._values:
                    raise RemoteProtocolError("empty AGI environment")
                self.environment = AgiEnvironment(dict(self._values))
                self.trailing_data = bytes(self._buffer)
                self._buffer.clear()
                return self.environment
            self._lines += 1
            if self._lines > self._max_lines:
                raise RemoteProtocolError(f"AGI environment has more than {self._max_lines} lines")
            self._add(line)

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


# --------------------------------------------------------------------------- replies


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
    extra: dict[str, str] = {}
    words: list[str] = []
    for token in rest.split():
        kv = _KEY_VALUE.fullmatch(token)
        if kv:
            extra[kv["key"]] = kv["value"]
        else:
            words.append(token)
    endpos = None
    if "endpos" in extra:
        try:
            endpos = int(extra.pop("endpos"))
        except ValueError:
            raise RemoteProtocolError(f"bad endpos in AGI reply: {text[:80]!r}") from None
    return AgiReply(code=code, result=result, data=data, endpos=endpos, extra=extra, message=" ".join(words)), False


class AgiReplyReader:
    """Incremental reader of replies; ``receive_data(b'')`` means end of stream.

    ``next_reply()`` returns an :class:`AgiReply`, ``NEED_DATA`` or
    ``END_OF_STREAM`` (closed cleanly between replies). ``HANGUP`` lines and
    provisional ``100`` replies are consumed on the way and never returned.
    """

    def __init__(self, initial: bytes = b"", *, max_line: int = MAX_LINE) -> None:
        self._buffer = bytearray(initial)
        self._max_line = max_line
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
        if not data:
            self._eof = True
        self._buffer += data

    def _next_line(self) -> bytes | None:
        newline = self._buffer.find(b"\n")
        if newline < 0:
            if len(self._buffer) > self._max_line:
                raise RemoteProtocolError(f"AGI reply line longer than {self._max_line} bytes")
            return None
        if newline > self._max_line:
            raise RemoteProtocolError(f"AGI reply line longer than {self._max_line} bytes")
        line = bytes(self._buffer[:newline]).rstrip(b"\r")
        del self._buffer[: newline + 1]
        return line

    def consume_hangup(self) -> bool:
        """Consume complete ``HANGUP`` lines at the head of the buffer; return ``hung_up``."""
        while self._usage is None and self._buffer.startswith(b"HANGUP"):
            rest = self._buffer[6:8]
            if rest[:1] == b"\n" or rest == b"\r\n":
                self._next_line()
                self.hung_up = True
            else:
                break
        return self.hung_up

    def next_reply(self) -> AgiReply | _Sentinel:
        while True:
            line = self._next_line()
            if line is None:
                if self._eof:
                    if self._buffer or self._usage is not None:
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


# --------------------------------------------------------------------------- commands

_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DIGITS = re.compile(r"[0-9*#]*")
_APP = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
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


def _digits(value: str, name: str) -> str:
    if not isinstance(value, str) or not _DIGITS.fullmatch(value):
        raise LocalProtocolError(f"{name} may hold only 0-9 * #, got {value!r}")
    return value


def _variable(name: str) -> str:
    if not isinstance(name, str) or not _VARIABLE.fullmatch(name):
        raise LocalProtocolError(f"bad AGI variable name {name!r}")
    return name


def _path(path: str) -> str:
    if not isinstance(path, str) or not path:
        raise LocalProtocolError("AGI file path must be a non-empty str")
    return path


def answer() -> bytes:
    return _command("ANSWER")


def hangup() -> bytes:
    return _command("HANGUP")


def stream_file(path: str, escape_digits: str = "") -> bytes:
    return _command("STREAM FILE", _path(path), _digits(escape_digits, "escape_digits"))


def get_data(path: str, timeout_ms: int, max_digits: int) -> bytes:
    return _command("GET DATA", _path(path), _number(timeout_ms, "timeout_ms"), _number(max_digits, "max_digits"))


def wait_for_digit(timeout_ms: int) -> bytes:
    return _command("WAIT FOR DIGIT", _number(timeout_ms, "timeout_ms"))


def record_file(
    path: str,
    fmt: str,
    escape_digits: str,
    timeout_ms: int,
    silence_s: int | None = None,
    beep: bool = False,
) -> bytes:
    """RECORD FILE; ``silence_s`` (whole seconds) becomes ``s=N``. res_agi treats any
    argument after the timeout that is neither a number nor ``s=`` as BEEP."""
    if not isinstance(fmt, str) or not re.fullmatch(r"[a-z0-9]+", fmt):
        raise LocalProtocolError(f"bad recording format {fmt!r}")
    args = [_path(path), fmt, _digits(escape_digits, "escape_digits"), _number(timeout_ms, "timeout_ms")]
    if beep:
        args.append("BEEP")
    if silence_s is not None:
        args.append("s=" + _number(silence_s, "silence_s"))
    return _command("RECORD FILE", *args)


def set_variable(name: str, value: str) -> bytes:
    return _command("SET VARIABLE", _variable(name), value)


def get_variable(name: str) -> bytes:
    return _command("GET VARIABLE", _variable(name))


def exec_(app: str, *args: str) -> bytes:
    """EXEC runs ``app`` with its arguments joined by ',' into one AGI argument."""
    if not isinstance(app, str) or not _APP.fullmatch(app):
        raise LocalProtocolError(f"bad application name {app!r}")
    for arg in args:
        quote(arg)
        if "," in arg:
            raise LocalProtocolError(f"application argument {arg!r} contains ','")
    return _command("EXEC", app, ",".join(args)) if args else _command("EXEC", app)


def verbose(msg: str, level: int = 1) -> bytes:
    if _number(level, "level") not in ("1", "2", "3", "4"):
        raise LocalProtocolError(f"verbose level must be 1-4, got {level!r}")
    return _command("VERBOSE", msg, str(level))
