"""The real system for end-to-end tests, started by the project's own commands.

One sandbox Asterisk and one ``gateway serve`` per test session, in a private
state directory with free ports, so a running demo (``make run``) is left
alone. The configuration is a copy of ``config/`` that tests may change.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from gateway.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
GATEWAY = [sys.executable, "-m", "gateway.cli"]
ARTIFACTS = ROOT / "test-artifacts"


def _free_ports(count: int) -> list[int]:
    socks, ports = [], []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


class System:
    """Handles on the running sandbox + gateway."""

    def __init__(self, env: dict, state: Path, config_dir: Path) -> None:
        self.env = env
        self.state = state
        self.config_dir = config_dir
        self.gateway: subprocess.Popen | None = None
        self.log_path = state / "gateway.log"

    @property
    def settings(self) -> Settings:
        return load_settings(self.env)

    def cli(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(GATEWAY + list(args), env=self.env, cwd=ROOT, capture_output=True, text=True,
                              timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"gateway {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        return proc

    def http(self, path: str) -> tuple[int, dict]:
        url = f"http://127.0.0.1:{self.env['GATEWAY_HTTP_PORT']}{path}"
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    def start_gateway(self) -> None:
        log = open(self.log_path, "a")
        self.gateway = subprocess.Popen(GATEWAY + ["serve"], env=self.env, cwd=ROOT, stdout=log,
                                        stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.gateway.poll() is not None:
                raise AssertionError(f"gateway exited:\n{self.log_path.read_text()[-3000:]}")
            try:
                status, body = self.http("/healthz")
                if status == 200 and body.get("ami") == "connected":
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"gateway not healthy in 60 s:\n{self.log_path.read_text()[-3000:]}")

    def stop_gateway(self) -> None:
        if self.gateway and self.gateway.poll() is None:
            self.gateway.send_signal(signal.SIGTERM)
            try:
                self.gateway.wait(20)
            except subprocess.TimeoutExpired:
                self.gateway.kill()
                self.gateway.wait()

    def reload_gateway(self) -> None:
        assert self.gateway is not None
        self.gateway.send_signal(signal.SIGHUP)


@pytest.fixture(scope="session")
def system():
    state = Path(tempfile.mkdtemp(prefix="gw-e2e-"))
    config_dir = state / "config"
    shutil.copytree(ROOT / "config", config_dir)
    ami, sip, agi, http = _free_ports(4)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update({
        "GATEWAY_STATE_DIR": str(state / "var"),
        "GATEWAY_CONFIG_DIR": str(config_dir),
        "GATEWAY_AMI_PORT": str(ami),
        "GATEWAY_SIP_PORT": str(sip),
        "GATEWAY_AGI_PORT": str(agi),
        "GATEWAY_HTTP_PORT": str(http),
        "GATEWAY_LOG_LEVEL": "INFO",
    })
    env.pop("DATABASE_URL", None)
    sysm = System(env, state, config_dir)
    sysm.cli("sandbox", "up")
    try:
        sysm.start_gateway()
        yield sysm
    finally:
        sysm.stop_gateway()
        sysm.cli("sandbox", "down", check=False)
        ARTIFACTS.mkdir(exist_ok=True)
        for name in ("gateway.log",):
            if (state / name).exists():
                shutil.copy(state / name, ARTIFACTS / f"e2e-{name}")
        console = state / "var" / "asterisk" / "log" / "asterisk.console.log"
        if console.exists():
            shutil.copy(console, ARTIFACTS / "e2e-asterisk.console.log")
        shutil.rmtree(state, ignore_errors=True)
