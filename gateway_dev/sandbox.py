"""Run a real Asterisk 22 from the sandbox root (``gateway_dev.sandbox_root``; needs root).

Each run lives in its own private mount namespace (``unshare --mount --propagation
private``) where /proc, /dev and the instance directory (bind-mounted on ``/srv/gw``)
are mounted; the mounts vanish with the process and never appear on the host, so
several sandboxes can run from the same root at once.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from gateway.errors import SandboxError
from gateway.settings import PBX_INSTANCE_DIR, PRIVATE_DIR_MODE, make_tree_private
from gateway_dev.sandbox_root import (Progress, ensure_root, host_mounts_under, last_lines, read_marker,
                                      require_root, root_dir, run_command, stderr_progress)

log = logging.getLogger(__name__)

INSTANCE_SUBDIRS = ("etc", "run", "log", "spool", "db", "prompts", "recordings")
PBX_CONF = f"{PBX_INSTANCE_DIR}/etc/asterisk.conf"
_children: dict[int, subprocess.Popen] = {}  # sandboxes started by this process


# -- commands -----------------------------------------------------------
def unshare_command(root: Path, instance_dir: Path, shared_recordings: Path | None = None) -> list[str]:
    """Asterisk in its own mount namespace, with umask 077: the recordings, logs and astdb
    it creates are 0600 and its directories 0700 (Asterisk itself never sets a umask).

    ``shared_recordings`` (a second Asterisk node of the same gateway) is mounted over the
    instance's ``recordings``: every node records where the gateway looks (issue 12)."""
    q = shlex.quote
    shared = (f" && mount --bind {q(str(shared_recordings))} {q(f'{root}{PBX_INSTANCE_DIR}/recordings')}"
              if shared_recordings is not None else "")
    script = ("umask 077"
              f" && mount -t proc proc {q(f'{root}/proc')}"
              f" && mount --bind /dev {q(f'{root}/dev')}"
              f" && mount --bind {q(str(instance_dir))} {q(f'{root}{PBX_INSTANCE_DIR}')}"
              f"{shared}"
              f" && exec chroot {q(str(root))} asterisk -f -n -C {q(PBX_CONF)}")
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]


def rx_command(pid: int, root: Path, command: str) -> list[str]:
    return ["nsenter", "-t", str(pid), "-m", "chroot", str(root),
            "asterisk", "-C", PBX_CONF, "-rx", command]


def asterisk_rx(*, pid: int, root: Path, command: str, timeout: float = 10) -> str:
    return run_command(rx_command(pid, root, command), timeout=timeout).stdout


# -- processes ---------------------------------------------------------
def pid_alive(pid: int | None) -> bool:
    """True if ``pid`` is a live (not zombie) process whose command line names asterisk."""
    if not pid or pid <= 0:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"asterisk" in cmdline  # a zombie's cmdline is empty


def owns_instance(pid: int, instance_dir: Path) -> bool:
    """``pid`` runs the sandbox of ``instance_dir`` (guards against a reused pid)."""
    try:
        if str(instance_dir).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
            return True  # still unshare/sh, before the exec chain reaches asterisk
        # /proc/PID/root resolves in the process's own mount namespace and chroot.
        ours, its = os.stat(instance_dir), os.stat(f"/proc/{pid}/root{PBX_INSTANCE_DIR}")
    except OSError:
        return False
    return (ours.st_dev, ours.st_ino) == (its.st_dev, its.st_ino)


def read_pid(path: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(path.read_text().strip())
    return None


def running_pid(instance_dir: Path) -> int | None:
    instance_dir = Path(instance_dir).resolve()
    for name in ("sandbox.pid", "asterisk.pid"):
        pid = read_pid(instance_dir / "run" / name)
        if pid_alive(pid) and owns_instance(pid, instance_dir):  # type: ignore[arg-type]
            return pid
    return None


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if pid in _children and _children[pid].poll() is not None:  # reap our own child
            del _children[pid]
        if not pid_alive(pid):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def _console_tail(console: Path, offset: int) -> str:
    with open(console, "rb") as fh:
        fh.seek(offset)
        return last_lines(fh.read()) or "(no output)"


def _remove_run_files(instance_dir: Path) -> None:
    for name in ("sandbox.pid", "asterisk.pid", "asterisk.ctl"):
        with contextlib.suppress(FileNotFoundError):
            (Path(instance_dir) / "run" / name).unlink()


# -- lifecycle ----------------------------------------------------------
def ensure_hosts_file(root: Path) -> None:
    """Give the root an /etc/hosts that knows this host's name.

    debootstrap leaves none, so Asterisk's look-ups of the host name went to DNS,
    which this machine does not answer: with 100 SIP calls at once they queued for
    tens of seconds and some INVITEs timed out (bench/README.md).
    """
    hostname = socket.gethostname() or "localhost"
    wanted = f"127.0.0.1\tlocalhost {hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n"
    hosts = root / "etc" / "hosts"
    try:
        if hosts.read_text() == wanted:
            return
    except OSError:
        pass
    tmp = hosts.with_name(".hosts.tmp")
    tmp.write_text(wanted)
    os.replace(tmp, hosts)


def start(*, root: Path, instance_dir: Path, progress: Progress = stderr_progress,
          ami_probe: Callable[[], bool] | None = None, timeout: float = 30,
          shared_recordings: Path | None = None) -> int:
    require_root()
    root, instance_dir = Path(root), Path(instance_dir).resolve()
    if not read_marker(root):
        raise SandboxError(f"sandbox root {root} is not built (run ensure_root first)")
    pid = running_pid(instance_dir)
    if pid is not None:
        raise SandboxError(f"the sandbox for {instance_dir} is already running (pid {pid})")
    if not (instance_dir / "etc" / "asterisk.conf").is_file():
        raise SandboxError(f"config not rendered: {instance_dir / 'etc' / 'asterisk.conf'} is missing")
    for sub in INSTANCE_SUBDIRS:
        (instance_dir / sub).mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    make_tree_private(instance_dir)  # recordings and logs of an install from before issue 9
    (root / PBX_INSTANCE_DIR.lstrip("/")).mkdir(parents=True, exist_ok=True)
    ensure_hosts_file(root)
    _remove_run_files(instance_dir)
    console = instance_dir / "log" / "asterisk.console.log"
    started = time.monotonic()
    with open(console, "ab") as out:
        out.write(f"=== sandbox start {time.strftime('%Y-%m-%d %H:%M:%S')} ===\n".encode())
        offset = out.tell()  # error messages quote this run's output only
        proc = subprocess.Popen(unshare_command(root, instance_dir, shared_recordings), stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    _children[proc.pid] = proc
    (instance_dir / "run" / "sandbox.pid").write_text(f"{proc.pid}\n")
    progress(f"starting Asterisk (pid {proc.pid}) for {instance_dir}")
    ctl = instance_dir / "run" / "asterisk.ctl"
    deadline = started + timeout
    booted = False
    while True:
        if proc.poll() is not None:
            _children.pop(proc.pid, None)
            _remove_run_files(instance_dir)
            raise SandboxError(f"Asterisk exited with code {proc.returncode} while starting; "
                               f"last lines of {console}:\n{_console_tail(console, offset)}")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            try:
                stop(instance_dir=instance_dir, root=root)
            except SandboxError as exc:
                log.error("could not stop the sandbox that failed to start: %s", exc)
            what = "AMI probe" if booted else "core waitfullybooted"
            raise SandboxError(f"Asterisk did not become ready within {timeout:g} s ({what}); "
                               f"last lines of {console}:\n{_console_tail(console, offset)}")
        if not booted and ctl.exists():
            try:
                asterisk_rx(pid=proc.pid, root=root, command="core waitfullybooted",
                            timeout=max(remaining, 0.5))
                booted = True
            except SandboxError as exc:
                log.debug("not booted yet: %s", exc)
        if booted and (ami_probe is None or ami_probe()):
            break
        time.sleep(0.1)
    progress(f"Asterisk ready in {time.monotonic() - started:.1f} s (pid {proc.pid})")
    return proc.pid


def stop(*, instance_dir: Path, root: Path, timeout: float = 10) -> bool:
    require_root()
    instance_dir = Path(instance_dir).resolve()
    pid = running_pid(instance_dir)
    if pid is None:
        _remove_run_files(instance_dir)
        return False
    try:
        asterisk_rx(pid=pid, root=root, command="core stop now", timeout=min(5, timeout))
    except SandboxError as exc:
        log.warning("core stop now failed, signalling instead: %s", exc)
    for sig, wait in ((None, timeout / 2), (signal.SIGTERM, timeout / 2), (signal.SIGKILL, 5)):
        if sig is not None:
            log.warning("Asterisk pid %s still running: sending %s", pid, sig.name)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        if _wait_gone(pid, wait):
            break
    else:
        raise SandboxError(f"Asterisk pid {pid} survived SIGKILL")
    _remove_run_files(instance_dir)
    leaked = host_mounts_under(root)
    if leaked:  # cannot happen with a private namespace; say so loudly if it does
        raise SandboxError(f"host mounts left under {root}: {leaked}")
    return True


def status(*, instance_dir: Path, root: Path) -> dict:
    pid = running_pid(Path(instance_dir))
    uptime = None
    if pid is not None:
        try:
            uptime = asterisk_rx(pid=pid, root=root, command="core show uptime", timeout=5).strip()
        except SandboxError as exc:
            log.warning("core show uptime failed: %s", exc)
    return {"root": str(root), "root_ready": read_marker(root) is not None,
            "asterisk_version": read_marker(root), "running": pid is not None, "pid": pid,
            "uptime": uptime, "host_mounts": host_mounts_under(root)}


def main(argv: list[str] | None = None) -> int:
    """``python -m gateway_dev.sandbox {build,start,stop,status}`` (defaults from the env)."""
    from gateway.settings import load_settings

    parser = argparse.ArgumentParser(prog="gateway_dev.sandbox")
    parser.add_argument("action", choices=["build", "start", "stop", "status"])
    parser.add_argument("--cache-dir", type=Path)
    parser.add_argument("--instance-dir", type=Path)
    args = parser.parse_args(argv)
    if args.cache_dir is None or args.instance_dir is None:
        settings = load_settings()
        args.cache_dir = args.cache_dir or settings.cache_dir
        args.instance_dir = args.instance_dir or settings.instance_dir
    root, inst = root_dir(args.cache_dir), args.instance_dir
    try:
        if args.action in ("build", "start"):
            ensure_root(args.cache_dir)
        if args.action == "start":
            start(root=root, instance_dir=inst)
        elif args.action == "stop":
            print("stopped" if stop(instance_dir=inst, root=root) else "not running")
        elif args.action == "status":
            print(json.dumps(status(instance_dir=inst, root=root), indent=2))
    except SandboxError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
