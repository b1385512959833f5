"""Issue 9: a private state directory, RTP bound to the configured address, AMI users with
only the rights they use. Pure rendering and file modes on disk; no Asterisk."""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.ivr_flows.validate import load_config
from gateway.pbx import dialplan
from gateway.settings import (
    ensure_sim_ami_secret,
    load_settings,
    make_state_private,
    private_mode_fixes,
)

ROOT = Path(__file__).resolve().parents[2]
CONFIG = load_config(ROOT / "config")


def _env(tmp_path: Path, **extra: str) -> dict:
    return {"GATEWAY_STATE_DIR": str(tmp_path / "var"), "GATEWAY_CONFIG_DIR": str(tmp_path / "cfg"),
            "GATEWAY_CACHE_DIR": str(tmp_path / "cache"), "GATEWAY_AMI_SECRET": "s3cret", **extra}


def _sections(text: str) -> dict[str, dict[str, str]]:
    """An Asterisk .conf as {section: {key: value}} (repeated sections merge)."""
    out: dict[str, dict[str, str]] = {}
    current = None
    for line in text.splitlines():
        line = line.split(";", 1)[0].strip()
        if line.startswith("[") and line.endswith("]"):
            current = out.setdefault(line[1:-1], {})
        elif "=" in line and current is not None:
            key, value = (part.strip() for part in line.split("=", 1))
            current[key] = value.lstrip(">").strip()
    return out


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@contextlib.contextmanager
def _umask(mask: int):
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


# -- AMI rights -------------------------------------------------------------------------------
def test_given_a_production_install_when_rendered_then_the_gateway_user_has_exactly_the_rights_it_uses(tmp_path):
    manager = _sections(dialplan.render_files(CONFIG, load_settings(_env(tmp_path)))["manager.conf"])

    assert set(manager) == {"general", "gateway"}  # no simulated caller without its secret
    user = manager["gateway"]
    assert user["read"].split(",") == ["call", "agent"]  # Hangup; queue and agent events
    # Reload Module=pbx_config (Ping, QueueReload need none); Redirect (the desk's emergency transfer);
    # Originate (the gateway's own calls to citizens: callback, 回访; gateway.pbx.outbound)
    assert user["write"].split(",") == ["system", "call", "originate"]
    assert user["secret"] == "s3cret"
    assert user["permit"] == "127.0.0.1/255.255.255.255" and user["deny"] == "0.0.0.0/0.0.0.0"


def test_given_a_development_sandbox_when_rendered_then_the_simulated_caller_has_its_own_user(tmp_path):
    settings = load_settings(_env(tmp_path))
    manager = _sections(dialplan.render_files(CONFIG, settings, sim_secret="sim-s3cret")["manager.conf"])

    gateway, sim = manager["gateway"], manager["gateway-sim"]
    assert sim["secret"] == "sim-s3cret" and sim["permit"] == "127.0.0.1/255.255.255.255"
    assert sim["write"].split(",") == ["originate", "call"]  # Originate; PlayDTMF, Setvar, Redirect, Hangup
    assert sim["read"].split(",") == ["call", "agent", "agi"]  # + AGIExecStart: what the caller hears
    for user in (gateway, sim):
        assert not {"command", "all", "config"} & set(user["write"].split(","))
    assert gateway["write"].split(",") == ["system", "call", "originate"]  # as in production
    assert "agi" not in gateway["read"].split(",")  # only the simulated caller listens to AGI events


def test_given_the_sim_secret_in_the_state_dir_when_written_then_the_sim_user_is_rendered(tmp_path):
    settings = load_settings(_env(tmp_path))
    etc = dialplan.write_config(CONFIG, settings)
    assert "gateway-sim" not in _sections((etc / "manager.conf").read_text())

    secret = ensure_sim_ami_secret(settings.state_dir)
    etc = dialplan.write_config(CONFIG, settings)

    assert _sections((etc / "manager.conf").read_text())["gateway-sim"]["secret"] == secret
    assert load_settings(_env(tmp_path)).sim_ami_secret == secret
    assert _mode(settings.state_dir / "secrets" / "ami-sim.secret") == 0o600


# -- RTP on the configured address -----------------------------------------------------------
def test_given_default_settings_when_rendered_then_sip_and_rtp_bind_to_loopback(tmp_path):
    files = dialplan.render_files(CONFIG, load_settings(_env(tmp_path, GATEWAY_SIP_PORT="5998")))
    pjsip, rtp = _sections(files["pjsip.conf"]), _sections(files["rtp.conf"])

    assert pjsip["transport-udp"]["bind"] == "127.0.0.1:5998"
    endpoint = pjsip["sipp"]
    assert endpoint["transport"] == "transport-udp"
    assert endpoint["media_address"] == "127.0.0.1" and endpoint["bind_rtp_to_media_address"] == "yes"
    assert (rtp["general"]["rtpstart"], rtp["general"]["rtpend"]) == ("20000", "29999")


def test_given_a_sip_host_when_rendered_then_transport_and_media_use_it(tmp_path):
    files = dialplan.render_files(CONFIG, load_settings(_env(tmp_path, GATEWAY_SIP_HOST="127.0.0.2")))
    pjsip = _sections(files["pjsip.conf"])
    assert pjsip["transport-udp"]["bind"] == "127.0.0.2:5060"
    assert pjsip["sipp"]["media_address"] == "127.0.0.2"

    v6 = _sections(dialplan.render_files(CONFIG, load_settings(_env(tmp_path, GATEWAY_SIP_HOST="::1")))["pjsip.conf"])
    assert v6["transport-udp"]["bind"] == "[::1]:5060" and v6["sipp"]["media_address"] == "::1"


def test_given_a_sip_host_that_is_not_an_address_when_loaded_then_refused(tmp_path):
    from gateway.errors import SettingsError

    with pytest.raises(SettingsError, match="GATEWAY_SIP_HOST"):
        load_settings(_env(tmp_path, GATEWAY_SIP_HOST="0.0.0.0; rm"))


# -- a private state directory ------------------------------------------------------------------
def test_given_a_permissive_umask_when_the_config_is_written_then_files_are_0600_and_dirs_0700(tmp_path):
    settings = load_settings(_env(tmp_path))
    with _umask(0o022):
        etc = dialplan.write_config(CONFIG, settings)

    assert {p.name: _mode(p) for p in etc.iterdir()} == {p.name: 0o600 for p in etc.iterdir()}
    for sub in ("etc", "run", "log", "spool", "db", "prompts", "recordings", "prompts/sim"):
        assert _mode(settings.instance_dir / sub) == 0o700, sub


def test_private_mode_fixes_is_pure_and_leaves_links_and_private_entries_alone():
    entries = [
        (Path("/v"), stat.S_IFDIR | 0o755),
        (Path("/v/gateway.db"), stat.S_IFREG | 0o644),
        (Path("/v/gateway.db-wal"), stat.S_IFREG | 0o600),
        (Path("/v/secrets"), stat.S_IFDIR | 0o700),
        (Path("/v/link"), stat.S_IFLNK | 0o777),
        (Path("/v/run/asterisk.ctl"), stat.S_IFSOCK | 0o755),
        (Path("/v/tool"), stat.S_IFREG | 0o700),
    ]
    assert private_mode_fixes(entries) == [
        (Path("/v"), 0o700), (Path("/v/gateway.db"), 0o600), (Path("/v/run/asterisk.ctl"), 0o600),
        (Path("/v/tool"), 0o600)]


def _old_install(tmp_path: Path) -> Path:
    """A state dir as an install before issue 9 left it: 0755 dirs, 0644 files."""
    var = tmp_path / "var"
    with _umask(0o022):
        (var / "asterisk" / "recordings").mkdir(parents=True)
        for name in ("gateway.db", "gateway.db-wal", "gateway.db-shm", "asterisk/recordings/call-1.wav",
                     "asterisk/log/messages.log"):
            (var / name).parent.mkdir(parents=True, exist_ok=True)
            (var / name).write_bytes(b"x")
    return var


def test_given_an_old_install_when_made_private_then_every_dir_is_0700_and_file_0600_and_links_untouched(tmp_path):
    var = _old_install(tmp_path)
    outside = tmp_path / "outside.txt"
    outside.write_text("not ours")
    os.chmod(outside, 0o644)
    (var / "link").symlink_to(outside)
    settings = load_settings(_env(tmp_path))

    changed = make_state_private(settings)

    assert changed and make_state_private(settings) == []  # idempotent
    for path in [var, *var.rglob("*")]:
        if path.is_symlink():
            continue
        assert _mode(path) == (0o700 if path.is_dir() else 0o600), path
    assert _mode(outside) == 0o644  # a link is not followed out of the state dir


def test_given_a_sqlite_database_outside_the_state_dir_when_made_private_then_it_and_its_wal_are_0600(tmp_path):
    db = tmp_path / "elsewhere" / "gw.db"
    db.parent.mkdir()
    for path in (db, db.with_name("gw.db-wal"), db.with_name("gw.db-shm")):
        path.write_bytes(b"x")
        os.chmod(path, 0o644)
    settings = load_settings(_env(tmp_path, DATABASE_URL=f"sqlite+aiosqlite:///{db}"))

    make_state_private(settings)

    assert [_mode(p) for p in (db, db.with_name("gw.db-wal"), db.with_name("gw.db-shm"))] == [0o600] * 3
    assert _mode(db.parent) == 0o755  # its directory is not ours to change


def test_given_an_old_install_when_a_gateway_command_starts_then_it_is_tightened_and_new_files_are_private(tmp_path):
    var = _old_install(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_") and k != "DATABASE_URL"}
    env.update(_env(tmp_path))
    env.pop("GATEWAY_AMI_SECRET")  # the CLI generates this install's secret: a new file

    proc = subprocess.run([sys.executable, "-m", "gateway.cli", "sandbox", "status"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)

    assert proc.returncode == 0, proc.stderr
    assert _mode(var) == 0o700 and _mode(var / "gateway.db") == 0o600
    assert _mode(var / "asterisk" / "recordings" / "call-1.wav") == 0o600
    assert _mode(var / "secrets") == 0o700 and _mode(var / "secrets" / "ami.secret") == 0o600


def test_given_the_gateway_cli_when_it_creates_its_database_then_the_database_is_0600(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_") and k != "DATABASE_URL"}
    env.update(_env(tmp_path))

    proc = subprocess.run([sys.executable, "-m", "gateway.cli", "db", "upgrade"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)

    assert proc.returncode == 0, proc.stderr
    var = tmp_path / "var"
    assert _mode(var) == 0o700
    files = [p for p in var.rglob("*") if p.is_file()]
    assert any(p.name == "gateway.db" for p in files)
    assert {p.name: _mode(p) for p in files} == {p.name: 0o600 for p in files}


def test_given_a_state_dir_made_private_once_when_settings_load_again_then_no_walk(tmp_path):
    """The walk runs once per install (new files are private by umask): a CLI command with
    thousands of recordings does not stat them all again."""
    import os

    from gateway.settings import load_settings, make_state_private

    settings = load_settings({"GATEWAY_STATE_DIR": str(tmp_path / "var")})
    (tmp_path / "var" / "rec").mkdir(parents=True)
    (tmp_path / "var" / "rec" / "a.wav").write_bytes(b"x")
    os.chmod(tmp_path / "var" / "rec" / "a.wav", 0o644)
    assert make_state_private(settings)  # the first time: tightened
    os.chmod(tmp_path / "var" / "rec" / "a.wav", 0o644)  # (a file a user loosened by hand afterwards)
    assert make_state_private(settings) == []  # marked: not walked again
    os.chmod(tmp_path / "var", 0o755)  # the directory itself loosened: walk again
    assert make_state_private(settings)
    assert oct(os.stat(tmp_path / "var" / "rec" / "a.wav").st_mode & 0o777) == "0o600"
