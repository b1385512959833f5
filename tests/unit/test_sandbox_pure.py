"""Pure parts of gateway_dev.sandbox and gateway_dev.sandbox_root: no root, no debootstrap, no Asterisk."""

from __future__ import annotations

import shlex
import subprocess
import threading
from pathlib import Path

import pytest

from gateway.errors import SandboxError
from gateway_dev import sandbox, sandbox_root
from gateway_dev.eventually import eventually


def _spawn(argv: list[str]) -> subprocess.Popen:
    """Popen, then wait until the child has exec'd (its cmdline is no longer Python's)."""
    proc = subprocess.Popen(argv)
    eventually(lambda: Path(f"/proc/{proc.pid}/cmdline").read_bytes().startswith(argv[0].encode()),
               interval=0.01, what=f"{argv[0]} exec'd")
    return proc


def _state(pid: int) -> str:
    """The process state letter from /proc (R, S, Z...)."""
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]


def test_unshare_command_quotes_paths_with_spaces(tmp_path):
    root = tmp_path / "cache dir" / "root"
    inst = tmp_path / "it's state" / "asterisk"
    argv = sandbox.unshare_command(root, inst)
    assert argv[:6] == ["unshare", "--mount", "--propagation", "private", "sh", "-c"]
    words = shlex.split(argv[6])
    assert words == [
        "umask", "077", "&&",
        "mount", "-t", "proc", "proc", f"{root}/proc", "&&",
        "mount", "--bind", "/dev", f"{root}/dev", "&&",
        "mount", "--rbind", str(inst), f"{root}/srv/gw", "&&",
        "exec", "chroot", str(root), "asterisk", "-f", "-n", "-C", "/srv/gw/etc/asterisk.conf",
    ]


def test_unshare_script_is_safe_for_sh(tmp_path):
    # A hostile path must stay one word: sh -n parses without executing.
    root = tmp_path / "a b;$(touch x)`y`"
    script = sandbox.unshare_command(root, tmp_path / "i n")[6]
    assert subprocess.run(["sh", "-n", "-c", script]).returncode == 0
    assert f"'{root}/proc'" in script


def test_rx_command_is_an_argument_list(tmp_path):
    root = tmp_path / "with space"
    argv = sandbox.rx_command(1234, root, "core show uptime")
    assert argv == ["nsenter", "-t", "1234", "-m", "chroot", str(root), "asterisk",
                    "-C", "/srv/gw/etc/asterisk.conf", "-rx", "core show uptime"]


def test_root_dir_layout(tmp_path):
    assert sandbox_root.root_dir(tmp_path) == tmp_path / "asterisk-sid" / "root"


def test_marker_roundtrip(tmp_path):
    assert sandbox_root.read_marker(tmp_path) is None
    (tmp_path / sandbox_root.MARKER).write_text("  \n")
    assert sandbox_root.read_marker(tmp_path) is None  # empty marker = incomplete
    sandbox_root.write_marker(tmp_path, "Asterisk 22.10.1\n")
    assert sandbox_root.read_marker(tmp_path) == "Asterisk 22.10.1"
    assert not (tmp_path / (sandbox_root.MARKER + ".tmp")).exists()


def test_marker_missing_root_dir(tmp_path):
    assert sandbox_root.read_marker(tmp_path / "nope") is None


def test_pid_alive_dead_and_foreign_pids():
    proc = subprocess.Popen(["sleep", "0"])
    proc.wait()
    assert sandbox.pid_alive(proc.pid) is False  # dead (reaped)
    assert sandbox.pid_alive(None) is False
    assert sandbox.pid_alive(0) is False
    assert sandbox.pid_alive(-5) is False
    sleeper = _spawn(["sleep", "30"])
    try:
        assert sandbox.pid_alive(sleeper.pid) is False  # alive but not asterisk
    finally:
        sleeper.kill()
        sleeper.wait()


def test_pid_alive_zombie_is_dead():
    proc = subprocess.Popen(["sh", "-c", "exit 0", "asterisk"])
    eventually(lambda: _state(proc.pid) == "Z", interval=0.01, what="the child a zombie (exited, not reaped)")
    try:
        assert sandbox.pid_alive(proc.pid) is False
    finally:
        proc.wait()


def test_pid_alive_live_asterisk_named_process():
    proc = _spawn(["sh", "-c", "sleep 30", "asterisk-lookalike"])
    try:
        assert sandbox.pid_alive(proc.pid) is True
    finally:
        proc.kill()
        proc.wait()


def test_running_pid_with_stale_pid_files(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    proc = subprocess.Popen(["true"])
    proc.wait()
    (run / "sandbox.pid").write_text(f"{proc.pid}\n")
    (run / "asterisk.pid").write_text("garbage")
    assert sandbox.running_pid(tmp_path) is None
    assert sandbox.read_pid(run / "asterisk.pid") is None


def test_build_lock_second_caller_waits(tmp_path):
    lock = tmp_path / "sub" / "build.lock"
    events: list[str] = []
    messages: list[str] = []
    first_in = threading.Event()

    def first():
        with sandbox_root.build_lock(lock, messages.append):
            events.append("first-in")
            first_in.set()
            eventually(lambda: messages, what="the second caller waiting for the lock")  # hold it until then
            events.append("first-out")

    def second():
        first_in.wait(5)
        with sandbox_root.build_lock(lock, messages.append):
            events.append("second-in")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert events == ["first-in", "first-out", "second-in"]
    assert messages == ["waiting for another build…"]


def test_build_lock_released_after_error(tmp_path):
    lock = tmp_path / "build.lock"
    with pytest.raises(RuntimeError):
        with sandbox_root.build_lock(lock, lambda m: None):
            raise RuntimeError("boom")
    messages: list[str] = []
    with sandbox_root.build_lock(lock, messages.append):
        pass
    assert messages == []


def test_debootstrap_progress_throttles():
    now = [100.0]
    out: list[str] = []
    rep = sandbox_root.DebootstrapProgress(out.append, interval=2.0, clock=lambda: now[0])
    rep.feed("I: Retrieving libc6 2.40\n")
    rep.feed("I: Validating libc6 2.40")  # a new phase reports at once
    for i in range(50):  # known phases alternating, no time passes: silent
        rep.feed(f"I: Retrieving pkg{i}")
        rep.feed(f"I: Validating pkg{i}")
    now[0] += 2.5
    rep.feed("I: Retrieving late")  # the interval has passed
    rep.feed("I: Validating late")
    rep.feed("I: Extracting base-files...")  # new phase
    rep.feed("some noise without prefix")
    rep.feed("W: Failure trying to run: chroot")  # warnings always show
    assert out == [
        "debootstrap [1 steps, 0 s] Retrieving libc6 2.40",
        "debootstrap [2 steps, 0 s] Validating libc6 2.40",
        "debootstrap [103 steps, 2 s] Retrieving late",
        "debootstrap [105 steps, 2 s] Extracting base-files...",
        "debootstrap [106 steps, 2 s] Failure trying to run: chroot",
    ]


def test_mounts_under_matches_prefix_and_escapes():
    text = "\n".join([
        "proc /proc proc rw 0 0",
        "proc /tmp/c\\040d/root/proc proc rw 0 0",
        "tmpfs /tmp/c\\040d/rootfs tmpfs rw 0 0",  # sibling, not under root
        "udev /tmp/c\\040d/root dev rw 0 0",
    ])
    got = sandbox_root.mounts_under(text, Path("/tmp/c d/root"))
    assert got == ["proc /tmp/c\\040d/root/proc proc rw 0 0", "udev /tmp/c\\040d/root dev rw 0 0"]


def test_host_mounts_under_nothing_for_fresh_dir(tmp_path):
    assert sandbox_root.host_mounts_under(tmp_path) == []


def test_status_on_empty_cache_dir(tmp_path):
    root = sandbox_root.root_dir(tmp_path / "cache")
    st = sandbox.status(instance_dir=tmp_path / "state" / "asterisk", root=root)
    assert st == {"root": str(root), "root_ready": False, "asterisk_version": None,
                  "running": False, "pid": None, "uptime": None, "host_mounts": []}


def test_require_root(monkeypatch):
    monkeypatch.setattr(sandbox.os, "geteuid", lambda: 1000)
    with pytest.raises(SandboxError, match="needs root"):
        sandbox_root.require_root()
    with pytest.raises(SandboxError, match="needs root"):
        sandbox.start(root=Path("/nonexistent"), instance_dir=Path("/nonexistent"))


def test_start_refuses_unrendered_config(tmp_path):
    if sandbox.os.geteuid() != 0:
        pytest.skip("start() checks root first")
    root = tmp_path / "root"
    root.mkdir()
    sandbox_root.write_marker(root, "Asterisk 22")
    with pytest.raises(SandboxError, match="config not rendered"):
        sandbox.start(root=root, instance_dir=tmp_path / "inst")


def test_run_reports_command_and_stderr():
    with pytest.raises(SandboxError) as exc:
        sandbox_root.run_command(["sh", "-c", "echo oops >&2; exit 3"], timeout=5)
    assert "exit 3" in str(exc.value) and "oops" in str(exc.value) and "sh -c" in str(exc.value)
    with pytest.raises(SandboxError, match="timed out"):
        sandbox_root.run_command(["sleep", "5"], timeout=0.2)
    with pytest.raises(SandboxError, match="not found"):
        sandbox_root.run_command(["/nonexistent/binary"], timeout=1)


def test_owns_instance_rejects_a_reused_pid(tmp_path):
    mine, other = tmp_path / "my inst", tmp_path / "other"
    mine.mkdir()
    other.mkdir()
    # Looks like the unshare/sh stage of `mine`: its command line names the instance dir.
    proc = _spawn(["sh", "-c", "sleep 30", "asterisk", f"mount --bind '{mine}'"])
    try:
        assert sandbox.owns_instance(proc.pid, mine) is True
        assert sandbox.owns_instance(proc.pid, other) is False
        (other / "run").mkdir()
        (other / "run" / "sandbox.pid").write_text(str(proc.pid))
        assert sandbox.running_pid(other) is None  # alive "asterisk", but not this sandbox
        (mine / "run").mkdir()
        (mine / "run" / "sandbox.pid").write_text(str(proc.pid))
        assert sandbox.running_pid(mine) == proc.pid
    finally:
        proc.kill()
        proc.wait()
