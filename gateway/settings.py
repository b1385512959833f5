"""Runtime settings, read once from the environment at start.

Every setting has a safe default (all listeners on loopback). Values are parsed
strictly: a boolean must be one of true/false/yes/no/1/0, a port must be an
integer in range; anything else raises :class:`SettingsError` naming the variable.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping

from gateway.errors import SettingsError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}

# Where the PBX sees the instance directory inside the sandbox root.
PBX_INSTANCE_DIR = "/srv/gw"


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


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if value <= 0:
        raise SettingsError(f"{name}={raw!r} must be positive")
    return value


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
    sip_port: int = 5060
    audiosocket_host: str = "127.0.0.1"
    audiosocket_port: int = 9092
    speech: bool = True  # GATEWAY_SPEECH=off: no recogniser at all (keys and recordings only)
    speech_config: Path | None = None  # default: <config_dir>/speech.yaml
    vad_threshold_dbfs: float = -40.0
    log_json: bool = False
    test_clock: bool = False
    extra: dict = field(default_factory=dict, compare=False)

    # -- derived paths -------------------------------------------------
    @property
    def instance_dir(self) -> Path:
        """The directory bind-mounted into the sandbox as ``/srv/gw``."""
        return self.state_dir / "asterisk"

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

    def with_(self, **changes) -> "Settings":
        return replace(self, **changes)


def secret_file(state_dir: Path) -> Path:
    return state_dir / "secrets" / "ami.secret"


def ensure_ami_secret(state_dir: Path) -> str:
    """Return this install's AMI secret, generating it (mode 0600) on first use."""
    path = secret_file(state_dir)
    if path.exists():
        value = path.read_text().strip()
        if value:
            return value
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    value = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    return value


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    state_dir = Path(env.get("GATEWAY_STATE_DIR") or "var").resolve()
    config_dir = Path(env.get("GATEWAY_CONFIG_DIR") or "config").resolve()
    xdg = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    cache_dir = Path(env.get("GATEWAY_CACHE_DIR") or (Path(xdg) / "gateway12345")).resolve()
    database_url = env.get("DATABASE_URL") or f"sqlite+aiosqlite:///{state_dir / 'gateway.db'}"
    secret = env.get("GATEWAY_AMI_SECRET") or ""
    if not secret and secret_file(state_dir).exists():
        secret = secret_file(state_dir).read_text().strip()
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
        sip_port=_port(env, "GATEWAY_SIP_PORT", 5060),
        audiosocket_host=env.get("GATEWAY_AUDIOSOCKET_HOST") or "127.0.0.1",
        audiosocket_port=_port(env, "GATEWAY_AUDIOSOCKET_PORT", 9092),
        speech=_bool(env, "GATEWAY_SPEECH", True),
        speech_config=Path(env["GATEWAY_SPEECH_CONFIG"]).resolve() if env.get("GATEWAY_SPEECH_CONFIG")
        else config_dir / "speech.yaml",
        vad_threshold_dbfs=-_float(env, "GATEWAY_VAD_THRESHOLD_DB", 40.0),  # dB below full scale
        log_json=_bool(env, "GATEWAY_LOG_JSON", False),
        test_clock=_bool(env, "GATEWAY_TEST_CLOCK", False),
    )
