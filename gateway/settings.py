"""Runtime settings, read once from the environment at start.

Every setting has a safe default (all listeners on loopback). Values are parsed
strictly: a boolean must be one of true/false/yes/no/1/0, a port must be an
integer in range; anything else raises :class:`SettingsError` naming the variable.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping

from gateway.errors import SettingsError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}

# Where the PBX sees the instance directory inside the sandbox root.
PBX_INSTANCE_DIR = "/srv/gw"

# The simulated caller's own AMI user (``gateway call``, the tests, the benchmarks): it also reads
# AGI events (what the caller hears). Rendered only where its secret exists.
SIM_AMI_USER = "gateway-sim"

# Everything under the state directory is private: the database and its WAL, recordings,
# Asterisk's instance (config with secrets, logs, astdb), the secrets.
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise SettingsError(f"{name}={raw!r} is not a boolean (use true or false)")


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        port = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise SettingsError(f"{name}={raw!r} is out of range 0..65535")
    return port


def _number(env: Mapping[str, str], name: str) -> float | None:
    """The variable as a float, None when unset; an error naming it when it is no number."""
    raw = env.get(name)
    if raw is None or raw == "":
        return None
    try:
        return float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    value = _number(env, name)
    if value is None:
        return default
    if value <= 0:
        raise SettingsError(f"{name}={env[name]!r} must be positive")
    return value


def _address(env: Mapping[str, str], name: str, default: str) -> str:
    raw = env.get(name) or default
    try:
        return str(ipaddress.ip_address(raw.strip()))
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not an IP address") from None


def _addresses(env: Mapping[str, str], name: str, default: str) -> tuple[str, ...]:
    raw = env.get(name) or default
    out = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            out.append(str(ipaddress.ip_network(part, strict=False)))
        except ValueError:
            raise SettingsError(f"{name}: {part!r} is not an IP address or network") from None
    if not out:
        raise SettingsError(f"{name} lists no address")
    return tuple(out)


@dataclass(frozen=True)
class Settings:
    state_dir: Path
    config_dir: Path
    cache_dir: Path
    database_url: str
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    agi_host: str = "127.0.0.1"
    agi_port: int = 4573
    agi_read_timeout: float = 30.0
    pbx_peers: tuple[str, ...] = ("127.0.0.1/32",)
    ami_host: str = "127.0.0.1"
    ami_port: int = 5038
    ami_user: str = "gateway"
    ami_secret: str = field(default="", repr=False)
    ami_action_timeout: float = 5.0
    ami_ping_interval: float = 10.0
    sip_host: str = "127.0.0.1"  # the PJSIP transport and the RTP media bind here
    sip_port: int = 5060
    sim_ami_user: str = SIM_AMI_USER
    sim_ami_secret: str = field(default="", repr=False)
    audiosocket_host: str = "127.0.0.1"
    audiosocket_port: int = 9092
    speech: bool = True  # GATEWAY_SPEECH=off: no recogniser at all (keys and recordings only)
    speech_config: Path | None = None  # default: <config_dir>/speech.yaml
    vad_threshold_dbfs: float = -40.0
    log_json: bool = False
    test_clock: bool = False
    trusted_proxies: tuple[str, ...] = ()  # reverse proxies whose X-Forwarded-For/-Proto are believed
    public_hosts: tuple[str, ...] = ()  # Host names the pages are reached by, beyond loopback and http_host
    http_header_timeout: float = 10.0  # a client must send a request's headers within this (slow loris)
    journal_max_mb: float = 64.0  # the call path's journal: backlog past which steps and transcripts are dropped
    journal_max_age: float = 30.0  # seconds: an older write still not in the database makes /healthz degraded
    journal_adopt_interval: float = 30.0  # seconds between looks for a stopped sibling instance's journal to replay
    ami_probe_interval: float = 0.25  # an unreachable Asterisk is probed (TCP connect) this often
    reconcile_interval: float = 60.0  # reconciliation with Asterisk runs this often (and on every AMI login)
    # FastAGI addresses the dialplan tries in order ("host:port"); () means agi_host:agi_port alone.
    agi_peers: tuple[str, ...] = ()
    recordings_min_free_mb: float = 50.0  # less free space than this: the caller is not recorded, ticket flagged
    instance_id: str = ""  # this gateway among several on one database (the bus); "" = host name + random
    extra: dict = field(default_factory=dict, compare=False)
    # Several Asterisk nodes (issue 12): GATEWAY_ASTERISK_NODES; empty = the one node above.
    asterisk_nodes: tuple["AsteriskNode", ...] = ()
    sip_proxy: tuple[str, int] | None = None  # GATEWAY_SIP_PROXY: the SIP proxy (Kamailio) the nodes accept calls from
    pbx_instance_dir: Path | None = None  # one node's instance dir (see node_settings); default <state>/asterisk
    pbx_node: str = ""  # one node's name: its Asterisk systemname (unique call ids across nodes)
    loop_debug: bool = False  # GATEWAY_LOOP_DEBUG (dev only): asyncio debug mode, callbacks over 20 ms logged
    # The follow-up call (回访, issue 13; gateway.followup): GATEWAY_FOLLOWUP_*.
    followup: bool = True  # the scheduler places follow-up calls (the desk's manual follow-up works either way)
    followup_hours: str = "followup"  # the calling window: a schedule of hotlines.yaml (holidays, 调休)
    followup_delay: float = 3600.0  # seconds after 办结 before the first call
    followup_attempts: int = 3  # calls at most; unanswered after the last: unreachable
    followup_retry_interval: float = 7200.0  # seconds between an unanswered call and the next
    followup_ring_seconds: float = 30.0  # how long the citizen's phone rings
    followup_max_calls: int = 4  # follow-up calls one gateway instance runs at once
    followup_tick: float = 5.0  # seconds between the scheduler's rounds
    followup_caller_id: str = "12345"  # the number the citizen sees
    # GATEWAY_OUTBOUND_DIAL: the channel the gateway's own calls to citizens go out on, a template
    # with {number} (``PJSIP/{number}@trunk``); "" = no outbound calls (the development sandbox's
    # default is its simulated citizen, ``Local/{number}@gw-citizen-sim``).
    outbound_dial: str = ""
    unit_job_interval: float = 30.0  # GATEWAY_UNIT_JOB_INTERVAL: seconds between deadline reminders/webhook runs
    unit_hooks_file: Path | None = None  # GATEWAY_UNIT_HOOKS: units' webhooks (default <config_dir>/unit_hooks.yaml)
    metrics_token_file: Path | None = None  # GATEWAY_METRICS_TOKEN_FILE: a bearer token that may only GET /metrics
    # SMS with the ticket number (issue 13, gateway/sms/): no sender configured = the outbox only records
    sms_webhook_url: str = ""  # GATEWAY_SMS_WEBHOOK_URL: POST JSON here (http:// or https://)
    sms_webhook_secret: str = field(default="", repr=False)  # GATEWAY_SMS_WEBHOOK_SECRET: HMAC-SHA256 signature
    sms_webhook_timeout: float = 10.0  # GATEWAY_SMS_WEBHOOK_TIMEOUT (s)
    sms_max_attempts: int = 6  # GATEWAY_SMS_MAX_ATTEMPTS: then the text is dead
    sms_retry_seconds: float = 30.0  # GATEWAY_SMS_RETRY_SECONDS: first backoff, doubling (at most 30 min)
    sms_poll_seconds: float = 2.0  # GATEWAY_SMS_POLL_SECONDS: the sender looks for due texts this often
    # A callback instead of waiting (issue 13, gateway.callback): GATEWAY_CALLBACK_*
    callback_over_seconds: float = 60.0  # offer a callback when the expected wait is longer (a flow may override)
    callback_attempts: int = 3  # calls per callback, the first included
    callback_retry_seconds: float = 120.0  # between an unanswered attempt and the next
    callback_ring_seconds: float = 30.0  # how long the citizen's phone rings per attempt
    callback_priority: int = 10  # QUEUE_PRIO of the called-back citizen in the queue (others have 0)
    callback_talk_seconds: float = 180.0  # handling time the estimate assumes while a queue has no history
    callback_check_seconds: float = 5.0  # the dispatcher also looks at open callbacks this often
    # Progress by phone (issue 13): open tickets offered by caller ID if filed within this many days;
    # wrong ticket numbers one calling number may key per hour before it is sent to an agent; how
    # long a caller waits for a live text (unit, reply) to be synthesised; the live audio cache.
    progress_lookback_days: float = 90.0
    progress_wrong_per_hour: int = 10
    progress_speech_timeout: float = 8.0
    progress_cache_mb: float = 50.0
    memory_debug: bool = False  # GATEWAY_MEMORY_DEBUG (dev only): tracemalloc + gc reports (gateway/memdebug.py)
    memory_debug_interval: float = 60.0  # GATEWAY_MEMORY_DEBUG_INTERVAL: seconds between those reports
    memory_debug_frames: int = 4  # GATEWAY_MEMORY_DEBUG_FRAMES: tracemalloc frames per site; 0 = no tracemalloc
    malloc_trim_interval: float = 60.0  # GATEWAY_MALLOC_TRIM_INTERVAL: glibc malloc_trim(0) this often (0 = never)
    malloc_arena_max: int = 2  # GATEWAY_MALLOC_ARENA_MAX: glibc malloc arenas at most (0 = glibc's default)

    # -- derived paths -------------------------------------------------
    @property
    def journal_dir(self) -> Path:
        """The call path's journal of writes (:mod:`gateway.ticketing.journal`); one per gateway
        instance (``GATEWAY_INSTANCE_ID``), since instances may share the state directory."""
        return self.state_dir / (f"journal-{self.instance_id}" if self.instance_id else "journal")

    @property
    def instance_dir(self) -> Path:
        """The directory bind-mounted into the sandbox as ``/srv/gw``."""
        return self.pbx_instance_dir or self.state_dir / "asterisk"

    @property
    def recordings_dir(self) -> Path:
        return self.instance_dir / "recordings"

    @property
    def prompts_dir(self) -> Path:
        return self.instance_dir / "prompts"

    @property
    def prompt_override_dir(self) -> Path:
        return self.config_dir / "prompts"

    def pbx_path(self, local: Path) -> str:
        """Translate a path under the instance dir into the path Asterisk sees."""
        rel = Path(local).resolve().relative_to(self.instance_dir.resolve())
        return f"{PBX_INSTANCE_DIR}/{rel.as_posix()}"

    def local_path(self, pbx_path: str) -> Path:
        """Translate a path Asterisk reported into the gateway's own path."""
        if not pbx_path.startswith(PBX_INSTANCE_DIR + "/"):
            raise ValueError(f"{pbx_path!r} is not under {PBX_INSTANCE_DIR}")
        rel = pbx_path[len(PBX_INSTANCE_DIR) + 1 :]
        target = (self.instance_dir / rel).resolve()
        target.relative_to(self.instance_dir.resolve())  # refuses ../ escapes
        return target

    @property
    def agi_addresses(self) -> tuple[str, ...]:
        """The FastAGI addresses (``host:port``) Asterisk tries in order (GATEWAY_AGI_PEERS)."""
        if self.agi_peers:
            return self.agi_peers
        host = f"[{self.agi_host}]" if ":" in self.agi_host else self.agi_host
        return (f"{host}:{self.agi_port}",)

    def with_(self, **changes) -> "Settings":
        return replace(self, **changes)


@dataclass(frozen=True)
class AsteriskNode:
    """One Asterisk node of GATEWAY_ASTERISK_NODES: its AMI, its SIP port and where its config goes."""

    name: str
    ami_host: str
    ami_port: int
    sip_port: int
    instance_dir: Path | None = None  # default: <state>/asterisk for the first node, <state>/asterisk-<name> after


def parse_asterisk_nodes(raw: str, state_dir: Path, name: str = "GATEWAY_ASTERISK_NODES") -> tuple[AsteriskNode, ...]:
    """``pbx1=127.0.0.1:5038:5060,pbx2=127.0.0.1:5039:5061[:/instance/dir]`` (name=AMI host:AMI port:SIP port)."""
    nodes: list[AsteriskNode] = []
    for index, part in enumerate(p.strip() for p in raw.split(",")):
        if not part:
            continue
        node_name, eq, rest = part.partition("=")
        fields = rest.split(":", 3)
        if not eq or len(fields) < 3 or not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", node_name):
            raise SettingsError(f"{name}: {part!r} is not name=ami_host:ami_port:sip_port[:instance_dir] "
                                "(name: letters, digits, '-', '_')")
        host = _address({name: fields[0]}, name, "")
        ports = [_port({name: value}, name, 0) for value in fields[1:3]]
        if 0 in ports:
            raise SettingsError(f"{name}: {part!r} needs non-zero ports")
        if len(fields) == 4 and fields[3]:
            directory = Path(fields[3]).resolve()
        else:
            directory = state_dir / ("asterisk" if index == 0 else f"asterisk-{node_name}")
        nodes.append(AsteriskNode(node_name, host, ports[0], ports[1], directory))
    for attr in ("name", "instance_dir"):
        values = [getattr(n, attr) for n in nodes]
        if len(set(values)) != len(values):
            raise SettingsError(f"{name}: two nodes share a {attr.replace('_', ' ')}")
    pairs = [(n.ami_host, n.ami_port) for n in nodes]
    if len(set(pairs)) != len(pairs):
        raise SettingsError(f"{name}: two nodes share an AMI address")
    return tuple(nodes)


def _sip_proxy(env: Mapping[str, str], name: str) -> tuple[str, int] | None:
    raw = (env.get(name) or "").strip()
    if not raw:
        return None
    host, sep, port = raw.rpartition(":")
    if not sep:
        raise SettingsError(f"{name}={raw!r} is not host:port")
    address = _address({name: host.strip("[]")}, name, "")
    number = _port({name: port}, name, 0)
    if number == 0:
        raise SettingsError(f"{name}={raw!r} needs a non-zero port")
    return address, number


def secret_file(state_dir: Path) -> Path:
    return state_dir / "secrets" / "ami.secret"


def sim_secret_file(state_dir: Path) -> Path:
    return state_dir / "secrets" / "ami-sim.secret"


def _read_secret(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return ""


def _ensure_secret(path: Path) -> str:
    value = _read_secret(path)
    if value:
        return value
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, PRIVATE_DIR_MODE)
    value = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    return value


def ensure_ami_secret(state_dir: Path) -> str:
    """Return this install's AMI secret, generating it (mode 0600) on first use."""
    return _ensure_secret(secret_file(state_dir))


def ensure_sim_ami_secret(state_dir: Path) -> str:
    """The simulated caller's AMI secret, generated (mode 0600) by the development sandbox's start."""
    return _ensure_secret(sim_secret_file(state_dir))


def read_sim_ami_secret(state_dir: Path) -> str:
    """The simulated caller's AMI secret, or "" where there is none (a production install)."""
    return _read_secret(sim_secret_file(state_dir))


# -- a private state directory ---------------------------------------------------------
def private_mode_fixes(entries) -> list[tuple[Path, int]]:
    """Pure: for ``(path, st_mode)`` pairs, the ``(path, mode)`` changes that make them private.

    Directories become 0700 and regular files (and sockets, FIFOs) 0600; symbolic links are
    left alone (chmod would follow them out of the state directory).
    """
    import stat

    fixes = []
    for path, mode in entries:
        if stat.S_ISLNK(mode):
            continue
        wanted = PRIVATE_DIR_MODE if stat.S_ISDIR(mode) else PRIVATE_FILE_MODE
        if stat.S_IMODE(mode) != wanted:
            fixes.append((Path(path), wanted))
    return fixes


def _tree_entries(top_dir: Path, extra: list[Path]):
    if top_dir.exists():
        yield top_dir, os.lstat(top_dir).st_mode
        for top, dirs, files in os.walk(top_dir):  # never follows links
            for name in dirs + files:
                path = Path(top) / name
                try:
                    yield path, os.lstat(path).st_mode
                except FileNotFoundError:  # removed meanwhile (a temp file of Asterisk's)
                    continue
    for path in extra:
        try:
            yield path, os.lstat(path).st_mode
        except FileNotFoundError:
            continue


def make_tree_private(top_dir: Path, extra: tuple[Path, ...] | list[Path] = ()) -> list[tuple[Path, int]]:
    """chmod ``top_dir``, everything below it and ``extra`` files private; returns what changed."""
    fixes = private_mode_fixes(_tree_entries(Path(top_dir), list(extra)))
    for path, mode in fixes:
        try:
            os.chmod(path, mode)
        except FileNotFoundError:
            continue
    return fixes


def make_state_private(settings: "Settings") -> list[tuple[Path, int]]:
    """Tighten an install made before the state directory was private; returns what changed.

    The state directory and everything below it, and a SQLite database (with its -wal and
    -shm) kept elsewhere by ``DATABASE_URL``. New files are private anyway: the gateway runs
    with umask 077 and so does the sandbox's Asterisk.
    """
    marker = settings.state_dir / ".private"  # the walk was done: later files are private by umask
    try:
        if marker.is_file() and (os.lstat(settings.state_dir).st_mode & 0o777) == PRIVATE_DIR_MODE:
            return []
    except OSError:
        pass
    extra = []
    db = sqlite_path(settings.database_url)
    if db is not None and not db.resolve().is_relative_to(settings.state_dir.resolve()):
        extra = [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]
    changed = make_tree_private(settings.state_dir, extra)
    if settings.state_dir.is_dir():
        fd = os.open(marker, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE_MODE)
        os.close(fd)
    return changed


def sqlite_path(database_url) -> Path | None:
    """The file behind a SQLite URL, or None (not SQLite, or in memory)."""
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database)


_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}


def database_url_of(raw: str) -> str:
    """``DATABASE_URL`` as the gateway's async drivers need it.

    SQLite goes through aiosqlite and PostgreSQL through asyncpg: a URL without a driver
    (``sqlite:///…``, ``postgresql://…``, ``postgres://…``) gets it; any other driver or
    database is refused, naming what to write instead.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    if raw.startswith("postgres://"):
        raw = "postgresql://" + raw[len("postgres://"):]
    try:
        url = make_url(raw)
    except ArgumentError:
        raise SettingsError("DATABASE_URL is not a database URL (e.g. postgresql+asyncpg://user:password@host/db "
                            "or sqlite+aiosqlite:////path/gateway.db)") from None
    backend, driver = url.get_backend_name(), url.drivername
    wanted = _ASYNC_DRIVERS.get(backend)
    if wanted is None:
        raise SettingsError(f"DATABASE_URL: {backend!r} is not supported (SQLite or PostgreSQL)")
    if driver == backend:
        return raw.replace(f"{backend}://", f"{wanted}://", 1)
    if driver != wanted:
        raise SettingsError(f"DATABASE_URL: driver {driver!r} is not supported; use {wanted}://")
    return raw


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    state_dir = Path(env.get("GATEWAY_STATE_DIR") or "var").resolve()
    config_dir = Path(env.get("GATEWAY_CONFIG_DIR") or "config").resolve()
    xdg = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    cache_dir = Path(env.get("GATEWAY_CACHE_DIR") or (Path(xdg) / "gateway12345")).resolve()
    database_url = database_url_of(env.get("DATABASE_URL") or f"sqlite+aiosqlite:///{state_dir / 'gateway.db'}")
    secret = env.get("GATEWAY_AMI_SECRET") or _read_secret(secret_file(state_dir))
    return Settings(
        state_dir=state_dir,
        config_dir=config_dir,
        cache_dir=cache_dir,
        database_url=database_url,
        http_host=env.get("GATEWAY_HTTP_HOST") or "127.0.0.1",
        http_port=_port(env, "GATEWAY_HTTP_PORT", 8080),
        agi_host=env.get("GATEWAY_AGI_HOST") or "127.0.0.1",
        agi_port=_port(env, "GATEWAY_AGI_PORT", 4573),
        agi_read_timeout=_float(env, "GATEWAY_AGI_READ_TIMEOUT", 30.0),
        pbx_peers=_addresses(env, "GATEWAY_PBX_PEERS", "127.0.0.1"),
        ami_host=env.get("GATEWAY_AMI_HOST") or "127.0.0.1",
        ami_port=_port(env, "GATEWAY_AMI_PORT", 5038),
        ami_user=env.get("GATEWAY_AMI_USER") or "gateway",
        ami_secret=secret,
        ami_action_timeout=_float(env, "GATEWAY_AMI_ACTION_TIMEOUT", 5.0),
        ami_ping_interval=_float(env, "GATEWAY_AMI_PING_INTERVAL", 10.0),
        sip_host=_address(env, "GATEWAY_SIP_HOST", "127.0.0.1"),
        sip_port=_port(env, "GATEWAY_SIP_PORT", 5060),
        sim_ami_secret=read_sim_ami_secret(state_dir),
        audiosocket_host=env.get("GATEWAY_AUDIOSOCKET_HOST") or "127.0.0.1",
        audiosocket_port=_port(env, "GATEWAY_AUDIOSOCKET_PORT", 9092),
        speech=_bool(env, "GATEWAY_SPEECH", True),
        speech_config=Path(env["GATEWAY_SPEECH_CONFIG"]).resolve() if env.get("GATEWAY_SPEECH_CONFIG")
        else config_dir / "speech.yaml",
        vad_threshold_dbfs=-_float(env, "GATEWAY_VAD_THRESHOLD_DB", 40.0),  # dB below full scale
        log_json=_bool(env, "GATEWAY_LOG_JSON", False),
        test_clock=_bool(env, "GATEWAY_TEST_CLOCK", False),
        trusted_proxies=_addresses(env, "GATEWAY_TRUSTED_PROXIES", "") if env.get("GATEWAY_TRUSTED_PROXIES") else (),
        public_hosts=_host_names(env, "GATEWAY_PUBLIC_HOSTS"),
        http_header_timeout=_float(env, "GATEWAY_HTTP_HEADER_TIMEOUT", 10.0),
        journal_max_mb=_float(env, "GATEWAY_JOURNAL_MAX_MB", 64.0),
        journal_max_age=_float(env, "GATEWAY_JOURNAL_MAX_AGE", 30.0),
        journal_adopt_interval=_float(env, "GATEWAY_JOURNAL_ADOPT_INTERVAL", 30.0),
        ami_probe_interval=_float(env, "GATEWAY_AMI_PROBE_INTERVAL", 0.25),
        reconcile_interval=_float(env, "GATEWAY_RECONCILE_INTERVAL", 60.0),
        asterisk_nodes=parse_asterisk_nodes(env.get("GATEWAY_ASTERISK_NODES") or "", state_dir),
        sip_proxy=_sip_proxy(env, "GATEWAY_SIP_PROXY"),
        agi_peers=_agi_peers(env, "GATEWAY_AGI_PEERS"),
        recordings_min_free_mb=_non_negative(env, "GATEWAY_RECORDINGS_MIN_FREE_MB", 50.0),
        instance_id=_instance_id(env, "GATEWAY_INSTANCE_ID"),
        loop_debug=_bool(env, "GATEWAY_LOOP_DEBUG", False),
        outbound_dial=_outbound_dial(env, "GATEWAY_OUTBOUND_DIAL", state_dir),
        unit_job_interval=_float(env, "GATEWAY_UNIT_JOB_INTERVAL", 30.0),
        unit_hooks_file=Path(env["GATEWAY_UNIT_HOOKS"]).resolve() if env.get("GATEWAY_UNIT_HOOKS")
        else config_dir / "unit_hooks.yaml",
        metrics_token_file=Path(env["GATEWAY_METRICS_TOKEN_FILE"]).resolve()
        if env.get("GATEWAY_METRICS_TOKEN_FILE") else None,
        sms_webhook_url=_webhook_url(env, "GATEWAY_SMS_WEBHOOK_URL"),
        sms_webhook_secret=env.get("GATEWAY_SMS_WEBHOOK_SECRET") or "",
        sms_webhook_timeout=_float(env, "GATEWAY_SMS_WEBHOOK_TIMEOUT", 10.0),
        sms_max_attempts=_count(env, "GATEWAY_SMS_MAX_ATTEMPTS", 6),
        sms_retry_seconds=_float(env, "GATEWAY_SMS_RETRY_SECONDS", 30.0),
        sms_poll_seconds=_float(env, "GATEWAY_SMS_POLL_SECONDS", 2.0),
        **_callback_settings(env),
        progress_lookback_days=_float(env, "GATEWAY_PROGRESS_LOOKBACK_DAYS", 90.0),
        progress_wrong_per_hour=_whole(env, "GATEWAY_PROGRESS_WRONG_PER_HOUR", 10),
        progress_speech_timeout=_float(env, "GATEWAY_PROGRESS_SPEECH_TIMEOUT", 8.0),
        progress_cache_mb=_float(env, "GATEWAY_PROGRESS_CACHE_MB", 50.0),
        **_followup(env),
        memory_debug=_bool(env, "GATEWAY_MEMORY_DEBUG", False),
        memory_debug_interval=_float(env, "GATEWAY_MEMORY_DEBUG_INTERVAL", 60.0),
        memory_debug_frames=_whole_in(env, "GATEWAY_MEMORY_DEBUG_FRAMES", 4, 0, 25, "0 = no tracemalloc"),
        malloc_trim_interval=_non_negative(env, "GATEWAY_MALLOC_TRIM_INTERVAL", 60.0),
        malloc_arena_max=_whole_in(env, "GATEWAY_MALLOC_ARENA_MAX", 2, 0, 64, "0 (glibc's default)"),
    )


def _followup(env: Mapping[str, str]) -> dict:
    """GATEWAY_FOLLOWUP_*: the follow-up call's window, delay, retries and load (gateway.followup)."""
    hours = (env.get("GATEWAY_FOLLOWUP_HOURS") or "followup").strip()
    if not re.fullmatch(r"[a-z][a-z0-9_-]{0,47}", hours):
        raise SettingsError(f"GATEWAY_FOLLOWUP_HOURS={hours!r}: name a schedule of hotlines.yaml (e.g. followup, always)")
    caller_id = (env.get("GATEWAY_FOLLOWUP_CALLER_ID") or "12345").strip()
    if not re.fullmatch(r"\+?[0-9]{3,20}", caller_id):
        raise SettingsError(f"GATEWAY_FOLLOWUP_CALLER_ID={caller_id!r} is not a phone number (3-20 digits)")
    out = {"followup": _bool(env, "GATEWAY_FOLLOWUP", True), "followup_hours": hours,
           "followup_caller_id": caller_id,
           "followup_delay": _non_negative(env, "GATEWAY_FOLLOWUP_DELAY", 3600.0),
           "followup_retry_interval": _non_negative(env, "GATEWAY_FOLLOWUP_RETRY_INTERVAL", 7200.0),
           "followup_ring_seconds": _float(env, "GATEWAY_FOLLOWUP_RING_SECONDS", 30.0),
           "followup_tick": _float(env, "GATEWAY_FOLLOWUP_TICK", 5.0)}
    for name, key, default, high in (("GATEWAY_FOLLOWUP_ATTEMPTS", "followup_attempts", 3, 10),
                                     ("GATEWAY_FOLLOWUP_MAX_CALLS", "followup_max_calls", 4, 200)):
        raw = (env.get(name) or "").strip()
        if not raw:
            out[key] = default
        elif not raw.isdigit() or not 1 <= int(raw) <= high:
            raise SettingsError(f"{name}={raw!r} must be a whole number from 1 to {high}")
        else:
            out[key] = int(raw)
    return out


SANDBOX_OUTBOUND_DIAL = "Local/{number}@gw-citizen-sim"  # the development sandbox's simulated citizen
_DIAL_PART = r"[A-Za-z0-9/@._:+=&-]*"


def _outbound_dial(env: Mapping[str, str], name: str, state_dir: Path) -> str:
    """The outbound channel template: ``{number}`` exactly once, channel characters around it.

    Unset: the sandbox's simulated citizen where the development sandbox lives (its simulated
    caller's secret exists), else "" (the gateway places no calls)."""
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return SANDBOX_OUTBOUND_DIAL if read_sim_ami_secret(state_dir) else ""
    value = raw.strip()
    if value.count("{number}") != 1 or not re.fullmatch(_DIAL_PART + r"\{number\}" + _DIAL_PART, value) \
            or "/" not in value.split("{number}")[0]:
        raise SettingsError(f"{name}={raw!r}: use a channel with {{number}} once, e.g. PJSIP/{{number}}@trunk "
                            "(letters, digits and / @ . _ : + = & - only)")
    return value


def _webhook_url(env: Mapping[str, str], name: str) -> str:
    """An http(s) URL with a host, or '' when unset."""
    raw = (env.get(name) or "").strip()
    if not raw:
        return ""
    from urllib.parse import urlsplit

    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(f"{name}={raw!r} is not an http:// or https:// URL with a host")
    return raw


def _count(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a whole number") from None
    if not 1 <= value <= 100:
        raise SettingsError(f"{name}={raw!r} is out of range 1..100")
    return value


def _callback_settings(env: Mapping[str, str]) -> dict:
    """GATEWAY_CALLBACK_*: the virtual hold's limits (gateway.callback)."""
    attempts = _non_negative(env, "GATEWAY_CALLBACK_ATTEMPTS", 3)
    if attempts != int(attempts) or not 1 <= attempts <= 10:
        raise SettingsError(f"GATEWAY_CALLBACK_ATTEMPTS={env.get('GATEWAY_CALLBACK_ATTEMPTS')!r} must be a whole "
                            "number from 1 to 10")
    priority = _non_negative(env, "GATEWAY_CALLBACK_PRIORITY", 10)
    if priority != int(priority) or not 1 <= priority <= 1000:
        raise SettingsError(f"GATEWAY_CALLBACK_PRIORITY={env.get('GATEWAY_CALLBACK_PRIORITY')!r} must be a whole "
                            "number from 1 to 1000")
    ring = _float(env, "GATEWAY_CALLBACK_RING_SECONDS", 30.0)
    if not 5 <= ring <= 120:
        raise SettingsError(f"GATEWAY_CALLBACK_RING_SECONDS={env.get('GATEWAY_CALLBACK_RING_SECONDS')!r} must be "
                            "5 to 120 seconds")
    return {
        "callback_over_seconds": _non_negative(env, "GATEWAY_CALLBACK_OVER_SECONDS", 60.0),
        "callback_attempts": int(attempts),
        "callback_retry_seconds": _non_negative(env, "GATEWAY_CALLBACK_RETRY_SECONDS", 120.0),
        "callback_ring_seconds": ring,
        "callback_priority": int(priority),
        "callback_talk_seconds": _float(env, "GATEWAY_CALLBACK_TALK_SECONDS", 180.0),
        "callback_check_seconds": _float(env, "GATEWAY_CALLBACK_CHECK_SECONDS", 5.0),
    }


def _whole(env: Mapping[str, str], name: str, default: int) -> int:
    """A positive whole number (a count)."""
    value = _number(env, name)
    if value is None:
        return default
    if not (value >= 1 and value < 1e9 and value == int(value)):  # NaN and inf fail here too
        raise SettingsError(f"{name}={env[name]!r} must be a whole number of 1 or more")
    return int(value)


def _whole_in(env: Mapping[str, str], name: str, default: int, low: int, high: int, zero: str) -> int:
    """A whole number from ``low`` to ``high`` (``zero`` says what 0 means)."""
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise SettingsError(f"{name}={raw!r}: use a whole number from {low} to {high}; {zero}")
    return int(raw)


def _instance_id(env: Mapping[str, str], name: str) -> str:
    """This instance's name on the bus (logs, /healthz): letters, digits, '.', '_', '-'."""
    raw = (env.get(name) or "").strip()
    if raw and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", raw):
        raise SettingsError(f"{name}={raw!r}: use 1-64 letters, digits, '.', '_' or '-'")
    return raw


def _agi_peers(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """``host:port,host:port``: the FastAGI servers in the order Asterisk tries them."""
    out = []
    for part in (env.get(name) or "").split(","):
        part = part.strip()
        if not part:
            continue
        m = re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?):([0-9]{1,5})", part)
        if not m or not 1 <= int(m.group(3)) <= 65535:
            raise SettingsError(f"{name}: {part!r} is not host:port")
        if part in out:
            raise SettingsError(f"{name}: {part!r} is listed twice")
        out.append(part)
    return tuple(out)


def _non_negative(env: Mapping[str, str], name: str, default: float) -> float:
    value = _number(env, name)
    if value is None:
        return default
    if not value >= 0 or value == float("inf"):
        raise SettingsError(f"{name}={env[name]!r} must be zero or more")
    return value


def _host_names(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Comma-separated host names (``hotline.example.gov.cn``, ``*`` for any)."""
    out = []
    for part in (env.get(name) or "").split(","):
        part = part.strip().lower()
        if not part:
            continue
        if part != "*" and not re.fullmatch(r"[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?|\[[0-9a-f:.]+\]", part):
            raise SettingsError(f"{name}: {part!r} is not a host name")
        out.append(part)
    return tuple(out)
