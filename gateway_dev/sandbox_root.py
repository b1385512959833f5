"""The Asterisk sandbox's root: a Debian sid tree with Asterisk 22, built once (needs root).

``ensure_root`` builds it with debootstrap into ``cache_dir/asterisk-sid/root`` (in its
own mount namespace, under an exclusive lock, as ``root.partial`` renamed when complete)
and records the Asterisk version in a marker file: a root without the marker is never
trusted. The root is shared read-mostly by every sandbox (``gateway_dev.sandbox`` runs
them). Also here: the helpers both modules use (running a command, finding a binary,
the host's mounts under a path).
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

from gateway.errors import SandboxError
from gateway.settings import PBX_INSTANCE_DIR

log = logging.getLogger(__name__)
Progress = Callable[[str], None]

MIRROR = "http://deb.debian.org/debian"
MARKER = ".gateway-root-complete"
HOST_PACKAGES = {"debootstrap": "debootstrap", "espeak-ng": "espeak-ng", "sox": "sox"}
# Files the gateway itself needs from Debian: the CJK font its PDF reports embed (issue 14).
HOST_FILES = {"/usr/share/fonts/truetype/wqy/wqy-microhei.ttc": "fonts-wqy-microhei"}


def stderr_progress(message: str) -> None:
    print(f"[sandbox] {message}", file=sys.stderr, flush=True)


def require_root() -> None:
    if os.geteuid() != 0:
        raise SandboxError("the sandbox needs root: debootstrap, unshare and chroot")


def last_lines(text: str | bytes | None, lines: int = 20) -> str:
    text = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return "\n".join((text or "").strip().splitlines()[-lines:])


def run_command(argv: list[str], *, timeout: float, env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = shlex.join(argv)
    try:
        cp = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env,
                            stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise SandboxError(f"`{cmd}`: {argv[0]} not found") from None
    except subprocess.TimeoutExpired as exc:
        raise SandboxError(f"`{cmd}` timed out after {timeout:g} s: {last_lines(exc.stderr)}") from None
    if cp.returncode != 0:
        raise SandboxError(f"`{cmd}` failed (exit {cp.returncode}): {last_lines(cp.stderr or cp.stdout)}")
    return cp


def which(name: str) -> str | None:
    """``shutil.which`` that also looks in the sbin dirs (debootstrap is /usr/sbin)."""
    path = os.environ.get("PATH", "") + ":/usr/local/sbin:/usr/sbin:/sbin"
    return shutil.which(name, path=path)


# -- host packages ------------------------------------------------------
def _missing_packages() -> list[str]:
    return ([pkg for binary, pkg in HOST_PACKAGES.items() if not which(binary)]
            + [pkg for path, pkg in HOST_FILES.items() if not os.path.exists(path)])


def ensure_host_packages(progress: Progress = stderr_progress) -> None:
    missing = _missing_packages()
    if not missing:
        return
    require_root()
    progress(f"installing host packages: {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        run_command(["apt-get", "update"], timeout=600, env=env)
        run_command(["apt-get", "install", "-y", *missing], timeout=1200, env=env)
    except SandboxError as exc:
        raise SandboxError(f"could not install host packages {missing}: {exc.message}") from None
    still = _missing_packages()
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
    return run_command(["chroot", str(root), "asterisk", "-V"], timeout=30).stdout.strip()


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
        size = run_command(["du", "-sm", str(root)], timeout=120).stdout.split()[0]
        progress(f"sandbox root ready in {time.monotonic() - started:.0f} s ({size} MB): {version}")
    return root


# -- mounts under the root ---------------------------------------------
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
