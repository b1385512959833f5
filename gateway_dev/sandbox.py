"""Provision and run a real Asterisk 22 from a Debian sid root (needs root).

The root is built once with debootstrap into ``cache_dir/asterisk-sid/root`` and
shared read-mostly by every sandbox. Each run lives in its own private mount
namespace (``unshare --mount --propagation private``) where /proc, /dev and the
instance directory (bind-mounted on ``/srv/gw``) are mounted; the mounts vanish
with the process and never appear on the host, so several sandboxes can run
from the same root at once.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import fcntl
import json
import logging
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

from gateway.errors import SandboxError
from gateway.settings import PBX_INSTANCE_DIR, PRIVATE_DIR_MODE, make_tree_private

log = logging.getLogger(__name__)
Progress = Callable[[str], None]

MIRROR = "http://deb.debian.org/debian"
MARKER = ".gateway-root-complete"
HOST_PACKAGES = {"debootstrap": "debootstrap", "espeak-ng": "espeak-ng", "sox": "sox"}
INSTANCE_SUBDIRS = ("etc", "run", "log", "spool", "db", "prompts", "recordings")
PBX_CONF = f"{PBX_INSTANCE_DIR}/etc/asterisk.conf"
_children: dict[int, subprocess.Popen] = {}  # sandboxes started by this process


def stderr_progress(message: str) -> None:
    print(f"[sandbox] {message}", file=sys.stderr, flush=True)


def require_root() -> None:
    if os.geteuid() != 0:
        raise SandboxError("the sandbox needs root: debootstrap, unshare and chroot")


def _tail(text: str | bytes | None, lines: int = 20) -> str:
    text = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return "\n".join((text or "").strip().splitlines()[-lines:])


def _run(argv: list[str], *, timeout: float, env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = shlex.join(argv)
    try:
        cp = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env,
                            stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise SandboxError(f"`{cmd}`: {argv[0]} not found") from None
    except subprocess.TimeoutExpired as exc:
        raise SandboxError(f"`{cmd}` timed out after {timeout:g} s: {_tail(exc.stderr)}") from None
    if cp.returncode != 0:
        raise SandboxError(f"`{cmd}` failed (exit {cp.returncode}): {_tail(cp.stderr or cp.stdout)}")
    return cp


def which(name: str) -> str | None:
    """``shutil.which`` that also looks in the sbin dirs (debootstrap is /usr/sbin)."""
    path = os.environ.get("PATH", "") + ":/usr/local/sbin:/usr/sbin:/sbin"
    return shutil.which(name, path=path)


# -- host packages ------------------------------------------------------
def ensure_host_packages(progress: Progress = stderr_progress) -> None:
    missing = [pkg for binary, pkg in HOST_PACKAGES.items() if not which(binary)]
    if not missing:
        return
    require_root()
    progress(f"installing host packages: {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        _run(["apt-get", "update"], timeout=600, env=env)
        _run(["apt-get", "install", "-y", *missing], timeout=1200, env=env)
    except SandboxError as exc:
        raise SandboxError(f"could not install host packages {missing}: {exc.message}") from None
    still = [pkg for binary, pkg in HOST_PACKAGES.items() if not which(binary)]
    if still:
        raise SandboxError(f"host packages still missing after apt-get install: {still}")


# -- the sid root -------------------------------------------------------
def root_dir(cache_dir: Path) -> Path:
    return Path(cache_dir) / "asterisk-sid" / "root"


def read_marker(root: Path) -> str | None:
    """The Asterisk version recorded when the root was completed, else None."""
    with contextlib.suppress(OSError):
        return (Path(root) / MARKER).read_text().strip() or None
    return None


def write_marker(root: Path, version: str) -> None:
    tmp = Path(root) / (MARKER + ".tmp")
    tmp.write_text(version.strip() + "\n")
    os.replace(tmp, Path(root) / MARKER)


@contextlib.contextmanager
def build_lock(lock_path: Path, progress: Progress = stderr_progress) -> Iterator[None]:
    """Exclusive flock on ``lock_path``; tells the user when it has to wait."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress("waiting for another build…")
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class DebootstrapProgress:
    """Turns debootstrap's ``I: ...`` lines into throttled progress messages."""

    def __init__(self, progress: Progress, *, interval: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.progress, self.interval, self.clock = progress, interval, clock
        self.start = clock()
        self.last = float("-inf")
        self.count = 0
        self.phases: set[str] = set()  # Retrieving/Validating alternate: report new ones only

    def feed(self, line: str) -> None:
        line = line.strip()
        if not line.startswith(("I: ", "W: ", "E: ")):
            return
        self.count += 1
        phase = line[3:].split(" ", 1)[0]
        now = self.clock()
        if phase not in self.phases or now - self.last >= self.interval or line[0] != "I":
            self.phases.add(phase)
            self.last = now
            self.progress(f"debootstrap [{self.count} steps, {now - self.start:.0f} s] {line[3:]}")


def _rmtree_unmounted(path: Path) -> None:
    mounts = host_mounts_under(path)
    if mounts:
        raise SandboxError(f"refusing to remove {path}: still mounted: {mounts}")
    shutil.rmtree(path)


def _debootstrap(target: Path, progress: Progress, mirror: str, timeout: float) -> None:
    # Own mount namespace: the proc/sys mounts debootstrap makes never reach the host.
    argv = ["unshare", "--mount", "--propagation", "private", which("debootstrap") or "debootstrap",
            "--variant=minbase", "--include=asterisk", "sid", str(target), mirror]
    tail: collections.deque[str] = collections.deque(maxlen=20)
    reporter = DebootstrapProgress(progress)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            stdin=subprocess.DEVNULL, errors="replace")
    watchdog = threading.Timer(timeout, proc.kill)
    watchdog.start()
    try:
        for line in proc.stdout:  # type: ignore[union-attr]
            tail.append(line.rstrip())
            log.debug("debootstrap: %s", line.rstrip())
            reporter.feed(line)
        rc = proc.wait()
    finally:
        watchdog.cancel()
    if rc != 0:
        raise SandboxError(f"`{shlex.join(argv)}` failed (exit {rc}):\n" + "\n".join(tail))


def asterisk_version(root: Path) -> str:
    return _run(["chroot", str(root), "asterisk", "-V"], timeout=30).stdout.strip()


def ensure_root(cache_dir: Path, progress: Progress = stderr_progress, *,
                mirror: str = MIRROR, timeout: float = 1800) -> Path:
    root = root_dir(cache_dir)
    if read_marker(root):
        return root
    require_root()
    with build_lock(root.parent / "build.lock", progress):
        if read_marker(root):  # another caller built it while we waited
            progress(f"sandbox root ready at {root}")
            return root
        ensure_host_packages(progress)
        partial = root.with_name("root.partial")
        for stale in (partial, root):  # a root without marker is not ours to trust
            if stale.exists():
                progress(f"removing incomplete {stale}")
                _rmtree_unmounted(stale)
        started = time.monotonic()
        progress(f"building the Asterisk sandbox root with debootstrap (sid) into {partial}")
        _debootstrap(partial, progress, mirror, timeout)
        version = asterisk_version(partial)
        (partial / PBX_INSTANCE_DIR.lstrip("/")).mkdir(parents=True, exist_ok=True)
        write_marker(partial, version)
        os.rename(partial, root)
        size = _run(["du", "-sm", str(root)], timeout=120).stdout.split()[0]
        progress(f"sandbox root ready in {time.monotonic() - started:.0f} s ({size} MB): {version}")
    return root


# -- commands -----------------------------------------------------------
def unshare_command(root: Path, instance_dir: Path) -> list[str]:
    """Asterisk in its own mount namespace, with umask 077: the recordings, logs and astdb
    it creates are 0600 and its directories 0700 (Asterisk itself never sets a umask)."""
    q = shlex.quote
    script = ("umask 077"
              f" && mount -t proc proc {q(f'{root}/proc')}"
              f" && mount --bind /dev {q(f'{root}/dev')}"
              f" && mount --bind {q(str(instance_dir))} {q(f'{root}{PBX_INSTANCE_DIR}')}"
              f" && exec chroot {q(str(root))} asterisk -f -n -C {q(PBX_CONF)}")
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]


def rx_command(pid: int, root: Path, command: str) -> list[str]:
    return ["nsenter", "-t", str(pid), "-m", "chroot", str(root),
            "asterisk", "-C", PBX_CONF, "-rx", command]


def asterisk_rx(*, pid: int, root: Path, command: str, timeout: float = 10) -> str:
    return _run(rx_command(pid, root, command), timeout=timeout).stdout


# -- processes and mounts -----------------------------------------------
def mounts_under(mounts_text: str, root: Path) -> list[str]:
    """Lines of a /proc/mounts text whose mount point is ``root`` or below it."""
    prefix = str(root).rstrip("/")
    out = []
    for line in mounts_text.splitlines():
        parts = line.split(" ")
        if len(parts) > 1:
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), parts[1])
            if point == prefix or point.startswith(prefix + "/"):
                out.append(line)
    return out


def host_mounts_under(root: Path) -> list[str]:
    return mounts_under(Path("/proc/self/mounts").read_text(), root)


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
        return _tail(fh.read()) or "(no output)"


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
          ami_probe: Callable[[], bool] | None = None, timeout: float = 30) -> int:
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
        proc = subprocess.Popen(unshare_command(root, instance_dir), stdin=subprocess.DEVNULL,
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
    """``python -m gateway.pbx.sandbox {build,start,stop,status}`` (defaults from the env)."""
    from gateway.settings import load_settings

    parser = argparse.ArgumentParser(prog="gateway.pbx.sandbox")
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
