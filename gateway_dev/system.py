"""A private sandbox Asterisk + ``gateway serve``, for the end-to-end tests and the benchmarks.

Started with the project's own commands (``gateway sandbox up``, ``gateway serve``)
in a private state directory with free ports, so a running demo (``make run``) is
left alone. ``database="postgresql"`` puts the gateway on a private PostgreSQL server
(:mod:`gateway_dev.postgres`, started by ``up`` and stopped by ``down``) instead of SQLite. ``System`` is a context manager: leaving it (also on an exception or
Ctrl-C) stops the gateway (SIGTERM, then SIGKILL) and runs ``gateway sandbox down``,
then removes the state directory unless told to keep it.

``tell_number=False`` (the shared end-to-end System of ``tests/e2e/conftest.py``) routes the
private copy's flows around their ``say_ticket`` nodes (:func:`route_around_ticket_number`):
calls reach the transfer straight after the description instead of hearing their ticket
number read (about 12 s each). The nodes stay defined, so the digit prompts are still rendered
and the desk's read-out (``main-digit-*``) works; the number is still drawn for every ticket.
The reading itself is tested on a System of its own that keeps the default
(``tests/e2e/test_ticket_number.py``). Other files whose own System's calls only need a ticket
pass ``tell_number=False`` too (``test_callback.py``, ``test_followup.py``, ``test_progress.py``,
``test_units.py``, ``test_supervisor_figures.py``, ``test_postgres_calls.py``,
``test_fault_recordings.py``); the other fault files keep the default.
"""

from __future__ import annotations

import concurrent.futures
import copy
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from gateway.settings import Settings, load_settings
from gateway_dev.eventually import eventually

ROOT = Path(__file__).resolve().parents[1]  # the checkout (config/ is copied from here)

GATEWAY = [sys.executable, "-m", "gateway.cli"]


def _wait(check, **options):
    """:func:`eventually` from any caller: in a thread of its own, so a caller on an event loop
    it does not run itself (Playwright's sync API, a test's loop) waits as it did with sleeps."""
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="system-wait") as pool:
        return pool.submit(eventually, check, **options).result()


def free_ports(count: int, *, udp: bool = False, even: bool = False) -> list[int]:
    """``count`` distinct free loopback ports (TCP, or UDP when ``udp``)."""
    socks, ports = [], []
    kind = socket.SOCK_DGRAM if udp else socket.SOCK_STREAM
    while len(ports) < count:
        s = socket.socket(socket.AF_INET, kind)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        socks.append(s)
        if even and port % 2:
            continue
        ports.append(port)
    for s in socks:
        s.close()
    return ports


# SIPp's media ports: between Asterisk's RTP range (rtp.conf 20000-29999) and the kernel's
# ephemeral ports (32768 and up), so neither Asterisk nor any client socket takes one meanwhile.
SIPP_MEDIA_RANGE = range(30000, 32764, 4)


def sipp_media_port() -> int:
    """An even port P for SIPp's ``-mp``, with P..P+3 free for UDP on loopback: SIPp binds the
    audio pair and the video pair after it. Picked at random in :data:`SIPP_MEDIA_RANGE`, so
    parallel test workers rarely try the same block (a test still retries SIPp's bind failure)."""
    import random

    for base in random.sample(SIPP_MEDIA_RANGE, len(SIPP_MEDIA_RANGE)):
        socks = []
        try:
            for port in range(base, base + 4):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError(f"no four free UDP ports in {SIPP_MEDIA_RANGE.start}-{SIPP_MEDIA_RANGE.stop + 3}")


def sipp_bind_failed(output: str) -> bool:
    """Whether SIPp stopped before placing a call because a port it binds was taken meanwhile."""
    return "Unable to bind" in output and "errno = 98" in output


def free_udp_tcp_port() -> int:
    """A port free for both UDP and TCP (Asterisk's SIP transport is UDP)."""
    for _ in range(200):
        (port,) = free_ports(1, udp=True)
        try:
            with socket.socket() as t:
                t.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port")


# The keys of a flow node (and of a flow) that name another node (gateway/ivr_flows/flowcheck.py).
_NODE_REFERENCES = ("next", "on_failure", "open", "closed", "agent", "start", "node")


def route_around_ticket_number(config_dir: Path) -> list[str]:
    """Make every flow in ``config_dir`` (a private copy) skip its ``say_ticket`` nodes: whatever
    led to such a node leads to the node's own ``next``. Edited line by line (comments and line
    numbers kept); the node is left defined, unreached. Returns ``flow:node`` for each one."""
    import yaml

    skipped = []
    for path in sorted((config_dir / "flows").glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        nodes = (yaml.safe_load(text) or {}).get("nodes") or {}
        targets = {nid: str(node["next"]) for nid, node in nodes.items()
                   if isinstance(node, dict) and node.get("type") == "say_ticket"}
        for nid, target in targets.items():
            pattern = rf"(\b(?:{'|'.join(_NODE_REFERENCES)}):[ \t]*)[\"']?{re.escape(nid)}[\"']?(?=[ \t]*(?:[,}}\n#]|$))"
            text = re.sub(pattern, lambda m: m.group(1) + target, text)
            skipped.append(f"{path.stem}:{nid}")
        if targets:
            path.write_text(text, encoding="utf-8")
            left = _references(yaml.safe_load(text), set(targets))
            if left:
                raise RuntimeError(f"{path}: still leads to {sorted(left)} after routing around it")
    return skipped


def _references(flow, ids: set) -> set:
    """The ids among ``ids`` that some node (other than themselves) or the flow still names."""
    found = set()

    def walk(value, owner):
        if isinstance(value, dict):
            for key, item in value.items():
                if key in _NODE_REFERENCES and isinstance(item, str) and item in ids and item != owner:
                    found.add(item)
                walk(item, owner)
        elif isinstance(value, list):
            for item in value:
                walk(item, owner)

    for nid, node in (flow.get("nodes") or {}).items():
        walk(node, nid)
    walk({k: v for k, v in flow.items() if k != "nodes"}, None)
    return found


class System:
    """Sandbox + gateway in a private state dir; use as ``with System(...) as sysm:``."""

    def __init__(self, *, cache_dir: Path | None = None, keep: bool = False, log=None,
                 prefix: str = "gw-bench-", log_level: str = "WARNING", test_clock: bool = False,
                 database: str = "sqlite", gateways: int = 1, database_url: str | None = None,
                 extra_env: dict | None = None, tell_number: bool = True) -> None:
        if database not in ("sqlite", "postgresql"):
            raise ValueError(f"database must be sqlite or postgresql, not {database!r}")
        self.database = database
        self.postgres = None  # gateway_dev.postgres.PostgresServer once started
        self.state = Path(tempfile.mkdtemp(prefix=prefix))
        self.config_dir = self.state / "config"
        shutil.copytree(ROOT / "config", self.config_dir)
        if not tell_number:
            route_around_ticket_number(self.config_dir)
        ami, agi, http, audiosocket = free_ports(4)
        sip = free_udp_tcp_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
        env.update({
            "GATEWAY_STATE_DIR": str(self.state / "var"),
            "GATEWAY_CONFIG_DIR": str(self.config_dir),
            "GATEWAY_AMI_PORT": str(ami),
            "GATEWAY_SIP_PORT": str(sip),
            "GATEWAY_AGI_PORT": str(agi),
            "GATEWAY_HTTP_PORT": str(http),
            "GATEWAY_AUDIOSOCKET_PORT": str(audiosocket),
            "GATEWAY_LOG_LEVEL": log_level,
            "GATEWAY_TEST_CLOCK": "true" if test_clock else "false",
            # Up to three speaking callers at once in a test: live whatever the calibration
            # measured on this shared machine (gateway.asr.capacity.Capacity.floor).
            "GATEWAY_SPEECH_MIN_STREAMS": "3",
            # No Vosk recognisers warmed while idle after calibration: ~4 CPU s each per
            # worker at every start of a test system (gateway.asr.worker.Worker.plan_warming)
            "GATEWAY_SPEECH_WARM": "0",
        })
        if cache_dir is not None:
            env["GATEWAY_CACHE_DIR"] = str(cache_dir)
        env.pop("DATABASE_URL", None)
        if database_url:
            env["DATABASE_URL"] = database_url
        env.update(extra_env or {})
        self.env = env
        self.keep = keep
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self.gateway: subprocess.Popen | None = None
        self.log_path = self.state / "gateway.log"
        self.sandbox_started = False
        self.last_stderr = ""  # progress lines of the last `gateway sandbox up`
        self._token: str | None = None
        self.peers: list[System] = []
        if gateways > 1:
            self._add_peers(gateways - 1)

    def _add_peers(self, count: int) -> None:
        """More ``gateway serve`` instances beside this one (two gateways, one Asterisk).

        They share the state directory (the Asterisk instance directory: rendered config,
        prompts, recordings; the AMI secrets) and the database (``database_url``: PostgreSQL,
        so the bus is ``LISTEN``/``NOTIFY``); each has its own instance id, HTTP, FastAGI and
        AudioSocket ports and log file. Every instance's dialplan lists every FastAGI port
        (``GATEWAY_AGI_PEERS``, this one first): Asterisk tries the next when one is down.
        """
        if "DATABASE_URL" not in self.env and self.database != "postgresql":
            raise ValueError("several gateways share one database: database='postgresql' (or a database_url)")
        self.env["GATEWAY_INSTANCE_ID"] = "gw-a"
        for n in range(count):
            agi, http, audiosocket = free_ports(3)
            peer = copy.copy(self)
            peer.env = {**self.env, "GATEWAY_AGI_PORT": str(agi), "GATEWAY_HTTP_PORT": str(http),
                        "GATEWAY_AUDIOSOCKET_PORT": str(audiosocket), "GATEWAY_INSTANCE_ID": f"gw-{chr(ord('b') + n)}"}
            peer.gateway, peer._token, peer.peers, peer.sandbox_started = None, None, [], False
            peer.postgres = None  # the first instance starts and stops the database server
            peer.log_path = self.state / f"gateway-{peer.env['GATEWAY_INSTANCE_ID']}.log"
            self.peers.append(peer)
        agi_peers = ",".join(f"127.0.0.1:{g.env['GATEWAY_AGI_PORT']}" for g in [self, *self.peers])
        for gateway in (self, *self.peers):
            gateway.env["GATEWAY_AGI_PEERS"] = agi_peers

    @property
    def gateways(self) -> list["System"]:
        """Every gateway instance: this one first, then :attr:`peers` (each a view of the same system
        with its own ports, ``http``, ``login``, ``start_gateway``, ``kill_gateway``)."""
        return [self, *self.peers]

    def kill_gateway(self) -> None:
        """SIGKILL this gateway instance (a crash: no cleanup, its sockets close with it)."""
        if self.gateway is not None and self.gateway.poll() is None:
            self.gateway.kill()
            self.gateway.wait()

    # -- handles ---------------------------------------------------------------------------
    @property
    def gateway_settings(self) -> Settings:
        """The settings of the system's ``gateway serve``."""
        return load_settings(self.env)

    @property
    def settings(self) -> Settings:
        """The system's settings as its callers use them: AMI as the simulated caller.

        A test or a benchmark places calls and listens to AGI events as the simulated caller,
        so an AMI client built from these settings logs in as its user (rendered for this
        development sandbox by ``gateway sandbox up``), not as the gateway's.
        """
        s = load_settings(self.env)
        return s.with_(ami_user=s.sim_ami_user, ami_secret=s.sim_ami_secret) if s.sim_ami_secret else s

    @property
    def sip_port(self) -> int:
        return int(self.env["GATEWAY_SIP_PORT"])

    @property
    def http_port(self) -> int:
        return int(self.env["GATEWAY_HTTP_PORT"])

    @property
    def console_log(self) -> Path:
        return self.state / "var" / "asterisk" / "log" / "asterisk.console.log"

    def cli(self, *args: str, timeout: float = 900, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(GATEWAY + list(args), env=self.env, cwd=ROOT, capture_output=True, text=True,
                              timeout=timeout)
        if check and proc.returncode != 0:
            raise RuntimeError(f"gateway {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        return proc

    def http(self, path: str, *, method: str = "GET", body=None, token: str | None = None,
             headers: dict | None = None, raw: bytes | None = None, timeout: float = 30) -> tuple[int, dict]:
        """One request to the gateway; JSON answers are decoded, others come back as ``{"text": ...}``."""
        url = f"http://127.0.0.1:{self.http_port}{path}"
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if data is None and method in ("POST", "PUT", "PATCH"):
            data = b""
        req = urllib.request.Request(url, data=data, method=method)
        if body is not None or raw is not None:
            req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        for key, value in (headers or {}).items():
            req.add_header(key, value)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - loopback
                payload, ctype, status = resp.read(), resp.headers.get("Content-Type", ""), resp.status
        except urllib.error.HTTPError as exc:
            payload, ctype, status = exc.read(), exc.headers.get("Content-Type", ""), exc.code
        if "json" in ctype:
            return status, json.loads(payload or b"{}")
        return status, {"text": payload.decode("utf-8", "replace")}

    def login(self, username: str, password: str, role: str, *, unit: str | None = None) -> str:
        """Create the user (if new) with the project's CLI and return a session token (for Bearer);
        ``unit``: the catalogue id of a ``unit`` account."""
        subprocess.run(GATEWAY + ["user", "add", username, "--role", role, "--password-stdin"]
                       + (["--unit", unit] if unit else []), env=self.env,
                       cwd=ROOT, input=password + "\n", capture_output=True, text=True, timeout=60)
        url = f"http://127.0.0.1:{self.http_port}/api/login"
        req = urllib.request.Request(url, data=json.dumps({"username": username, "password": password}).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - loopback
            cookie = resp.headers.get("Set-Cookie", "")
        token = cookie.split("gw_session=", 1)[1].split(";", 1)[0] if "gw_session=" in cookie else ""
        if not token:
            raise RuntimeError(f"login as {username} gave no session cookie")
        return token

    def token(self) -> str:
        """A supervisor's session token (the user is created on first use): every /api/ route needs one."""
        if self._token is None:
            self._token = self.login("system-supervisor", "system-supervisor-pw-1", "supervisor")
        return self._token

    def reload_gateway(self) -> None:
        if self.gateway is not None:
            self.gateway.send_signal(signal.SIGHUP)

    # -- lifecycle -------------------------------------------------------------------------
    def sandbox_up(self, timeout: float = 1800) -> float:
        started = time.monotonic()
        self.sandbox_started = True  # from now on, always try `sandbox down`
        self.last_stderr = self.cli("sandbox", "up", timeout=timeout).stderr
        return time.monotonic() - started

    def sandbox_down(self) -> None:
        if self.sandbox_started:
            proc = self.cli("sandbox", "down", check=False, timeout=60)
            if proc.returncode != 0:
                self.log(f"warning: sandbox down failed: {proc.stderr[-500:]}")
            self.sandbox_started = False

    def start_gateway(self, timeout: float = 60) -> float:
        started = time.monotonic()
        log = open(self.log_path, "a")
        self.gateway = subprocess.Popen(GATEWAY + ["serve"], env=self.env, cwd=ROOT, stdout=log,
                                        stderr=subprocess.STDOUT)
        log.close()

        def healthy() -> bool:
            if self.gateway.poll() is not None:  # not retried: the gateway is gone
                raise RuntimeError(f"gateway exited:\n{self.log_path.read_text()[-3000:]}")
            # Anonymous /healthz says only up or down: "ok" is the database and AMI both up.
            status, body = self.http("/healthz", timeout=2)
            return status == 200 and body.get("status") == "ok"

        try:
            _wait(healthy, timeout=timeout, interval=0.05, retry_on=(OSError,), what="gateway healthy")
        except AssertionError as exc:
            raise RuntimeError(f"{exc}:\n{self.log_path.read_text()[-3000:]}") from None
        return time.monotonic() - started

    def wait_speech_ready(self, language: str = "ko", timeout: float = 120) -> dict:
        """Wait until the recogniser has loaded ``language``'s model; returns /healthz's speech part."""
        def ready() -> dict | None:
            _status, body = self.http("/healthz", timeout=5, token=self.token())  # details: supervisors
            speech = body.get("speech") or {}
            state = str(speech.get("languages", {}).get(language, ""))
            return speech if speech.get("status") == "ready" and state.startswith("ready") else None

        try:
            return _wait(ready, timeout=timeout, interval=0.2, retry_on=(OSError,),
                              what=f"speech for {language} ready")
        except AssertionError as exc:
            raise RuntimeError(str(exc)) from None

    def stop_gateway(self) -> None:
        if self.gateway and self.gateway.poll() is None:
            self.gateway.send_signal(signal.SIGTERM)
            try:
                self.gateway.wait(20)
            except subprocess.TimeoutExpired:
                self.gateway.kill()
                self.gateway.wait()
        self.gateway = None

    def start_database(self) -> float:
        """With ``database="postgresql"``: a private server and database ``gateway`` for the
        gateway and the CLI (``DATABASE_URL``); nothing to do for SQLite (a file in the state dir)."""
        if self.database != "postgresql" or self.postgres is not None:
            return 0.0
        from gateway_dev.postgres import PostgresServer

        started = time.monotonic()
        # Its own directory: the state dir is root's 0700, which the postgres user cannot enter.
        self.postgres = PostgresServer(prefix=f"{self.state.name}-pg-", keep=self.keep)
        self.postgres.start()
        self.env["DATABASE_URL"] = self.postgres.create_database("gateway")
        return time.monotonic() - started

    def stop_database(self) -> None:
        if self.postgres is not None:
            self.postgres.stop()
            self.postgres = None

    def up(self) -> dict:
        """Database (PostgreSQL only) + sandbox up + gateway healthy (every instance); returns the
        timings in seconds."""
        t_database = self.start_database()
        for peer in self.peers:  # the same database for every instance
            peer.env["DATABASE_URL"] = self.env["DATABASE_URL"]
        t_sandbox = self.sandbox_up()
        t_gateway = self.start_gateway()
        for peer in self.peers:
            t_gateway += peer.start_gateway()
        return {"database_s": t_database, "sandbox_up_s": t_sandbox, "gateway_healthy_s": t_gateway,
                "total_s": t_database + t_sandbox + t_gateway}

    def down(self) -> None:
        """Gateways SIGTERM, then sandbox down, then the database server; safe to call more than once."""
        try:
            for peer in self.peers:
                peer.stop_gateway()
            self.stop_gateway()
        finally:
            try:
                self.sandbox_down()
            finally:
                self.stop_database()

    def __enter__(self) -> "System":
        return self

    def __exit__(self, *exc) -> None:
        # Ctrl-C during teardown would leave Asterisk running: ignore SIGINT while tearing down.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            self.down()
        finally:
            signal.signal(signal.SIGINT, previous)
            if not self.keep:
                shutil.rmtree(self.state, ignore_errors=True)


CALLER_VOICE = "zm_yunxia"  # simulated Mandarin callers: the project's voice, not the prompts' zf_xiaobei


def say_zh(text: str, path: Path, voice: str = CALLER_VOICE) -> Path:
    """A Mandarin caller's words as a WAV, spoken by the project's own neural voice (a voice
    other than the prompts'). espeak-ng's Mandarin reads pinyin in English: a recogniser
    hears nonsense in it (even words it was biased towards), so it is no caller.

    Cached like the prompts (gateway.pbx.prompts): ``<cache dir>/callers/<hash>.wav`` by a hash
    of (render version, engine, voice, spoken text), only what Kokoro said. Loading the voice
    and saying a sentence takes 10-60 s of a loaded 2-core machine, once per test file
    otherwise; the file is the same words in the same voice."""
    import hashlib

    from gateway import tts
    from gateway.pbx.prompts import RENDER_VERSION
    from gateway.tts import render_wav

    path.parent.mkdir(parents=True, exist_ok=True)
    spoken = tts.spoken_text(text, "zh")
    digest = hashlib.sha256(f"{RENDER_VERSION}\0kokoro\0{voice}\0{spoken}".encode("utf-8")).hexdigest()[:20]
    cache = load_settings(dict(os.environ)).cache_dir / "callers"
    cached = cache / f"{digest}.wav"
    if not cached.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".gw-caller-", dir=cache) as tmp:
            fresh = Path(tmp) / "new.wav"
            made = render_wav(text, fresh, voice=voice)
            assert made["engine"] == "kokoro", made  # the fallback voice would test the recogniser on noise
            os.replace(fresh, cached)  # atomic: two workers saying the same words never see half a file
    shutil.copyfile(cached, path)
    return path


async def desk_events(system: "System", token: str, since: int = 0, *, want: int = 1, timeout: float = 60,
                      kind: str | None = None) -> list[dict]:
    """What an agent's desk WebSocket receives (``hello`` first) until ``want`` events (of
    ``kind``, or any but ``hello``) arrived or ``timeout`` passed."""
    import asyncio

    import aiohttp

    url = f"http://127.0.0.1:{system.http_port}/api/desk/ws?since={since}"
    events: list[dict] = []
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as session:
        async with session.ws_connect(url) as ws:
            try:
                async with asyncio.timeout(timeout):
                    async for msg in ws:
                        events.append(msg.json())
                        counted = [e for e in events if e["type"] != "hello" and (kind is None or e["type"] == kind)]
                        if len(counted) >= want:
                            break
            except TimeoutError:
                pass
    return events

