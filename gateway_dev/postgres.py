"""A private PostgreSQL 15 server for the tests and the benchmarks (Debian's ``postgresql``).

Like the sandbox Asterisk, each server lives in its own directory (``mkdtemp``) with its
own port, so the cluster Debian creates at install time (and anything else on the machine)
is left alone and never needed:

* ``initdb`` makes a cluster whose superuser ``gateway`` has a generated password
  (scram-sha-256 for every connection; no trust), listening on 127.0.0.1 only, no Unix
  socket (its path limits and permissions buy nothing here).
* As root (the test machine), PostgreSQL refuses to run: the directory is handed to the
  unprivileged ``postgres`` user and ``initdb``/``postgres`` run as that user.
* Durability stays on (``fsync``, ``synchronous_commit``, full page writes): tests of
  the journal and of crashes rely on a commit being on disk. Only what costs time without
  changing what a committed row means is relaxed: ``initdb --no-sync`` (a fresh, throw-away
  cluster), small shared buffers, ``wal_level=minimal`` (no replication).
* ``start`` waits until the server accepts connections (``pg_isready`` over TCP);
  ``stop`` is ``pg_ctl stop -m fast``, then SIGKILL of the postmaster on timeout, and
  removes the directory unless ``keep``.

    with PostgresServer() as pg:
        url = pg.create_database("t1")   # postgresql+asyncpg://gateway:...@127.0.0.1:PORT/t1?ssl=disable

``python -m gateway_dev.postgres`` starts one and prints its URL until Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN_DIR = Path(os.environ.get("GATEWAY_POSTGRES_BIN", "/usr/lib/postgresql/15/bin"))
SUPERUSER = "gateway"
RUN_AS = "postgres"  # Debian's system user for PostgreSQL; used only when we are root

# Settings given on the command line (documented above): durability on, memory small.
SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "unix_socket_directories": "",
    "fsync": "on",
    "synchronous_commit": "on",
    "full_page_writes": "on",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "shared_buffers": "32MB",
    "max_connections": "200",
    "log_min_messages": "warning",
    "log_min_error_statement": "panic",  # the tests provoke unique violations on purpose
}

_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class PostgresError(RuntimeError):
    """The private server could not be set up, started or stopped."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """One private PostgreSQL server; a context manager (start on enter, stop on exit)."""

    def __init__(self, *, base_dir: Path | None = None, keep: bool = False, bin_dir: Path = BIN_DIR,
                 prefix: str = "gw-pg-") -> None:
        self.bin_dir = Path(bin_dir)
        if not (self.bin_dir / "postgres").is_file():
            raise PostgresError(f"PostgreSQL 15 not found in {self.bin_dir} (apt-get install -y postgresql; "
                                "or `make test-tools`)")
        self.dir = Path(tempfile.mkdtemp(prefix=prefix, dir=base_dir))
        self.data = self.dir / "data"
        self.log_path = self.dir / "postgres.log"
        self.password = secrets.token_urlsafe(18)
        self.port = 0
        self.keep = keep
        self.proc: subprocess.Popen | None = None
        self._as_root = os.geteuid() == 0

    # -- addresses ---------------------------------------------------------------------
    def url(self, database: str = "postgres", *, driver: str = "asyncpg") -> str:
        """A SQLAlchemy URL of ``database`` on this server (``driver`` may be '' for libpq)."""
        scheme = f"postgresql+{driver}" if driver else "postgresql"
        # No TLS on loopback; saying so also spares asyncpg its look for ~/.postgresql/ key and
        # certificate files on every connection (file I/O on the event loop).
        ssl = "ssl=disable" if driver == "asyncpg" else "sslmode=disable"
        return f"{scheme}://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/{database}?{ssl}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- commands ----------------------------------------------------------------------
    def _user_options(self) -> dict:
        return {"user": RUN_AS, "group": RUN_AS, "extra_groups": []} if self._as_root else {}

    def _env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update({"PGPASSWORD": self.password, "PGCONNECT_TIMEOUT": "5", "LC_ALL": "C.UTF-8"})
        return env

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        proc = subprocess.run([str(self.bin_dir / args[0]), *args[1:]], env=self._env(), cwd=self.dir,
                              capture_output=True, text=True, timeout=timeout, **self._user_options())
        if proc.returncode != 0:
            raise PostgresError(f"{args[0]} failed ({proc.returncode}): {(proc.stderr or proc.stdout)[-2000:]}")
        return proc

    def psql(self, sql: str, database: str = "postgres", *, timeout: float = 60) -> str:
        """Run ``sql`` (one or more statements, outside a transaction) as the superuser."""
        return self._run("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-h", "127.0.0.1",
                         "-p", str(self.port), "-U", SUPERUSER, "-d", database, "-c", sql,
                         timeout=timeout).stdout

    # -- lifecycle ---------------------------------------------------------------------
    def _init(self) -> None:
        if self._as_root:
            shutil.chown(self.dir, RUN_AS, RUN_AS)
        pwfile = self.dir / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self._as_root:
            shutil.chown(pwfile, RUN_AS, RUN_AS)
        pwfile.chmod(0o600)
        try:
            self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, f"--pwfile={pwfile}",
                      "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync",
                      "--no-instructions", timeout=120)
        finally:
            pwfile.unlink(missing_ok=True)

    def start(self, timeout: float = 60) -> "PostgresServer":
        if self.running:
            raise PostgresError(f"the server in {self.dir} is already running")
        if not self.data.exists():
            self._init()
        for attempt in range(3):  # a free port may be taken between choosing and binding it
            self.port = _free_port()
            try:
                self._start_once(timeout)
                return self
            except PostgresError:
                if attempt == 2 or "could not bind" not in self._log_tail():
                    raise
        raise AssertionError("unreachable")

    def _start_once(self, timeout: float) -> None:
        settings = {**SERVER_SETTINGS, "port": str(self.port)}
        args = [str(self.bin_dir / "postgres"), "-D", str(self.data)]
        for key, value in settings.items():
            args += ["-c", f"{key}={value}"]
        with open(self.log_path, "ab") as log:
            self._log_offset = log.tell()
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         env=self._env(), cwd=self.dir, start_new_session=True,
                                         **self._user_options())
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                code, self.proc = self.proc.returncode, None
                raise PostgresError(f"postgres exited with code {code} while starting:\n{self._log_tail()}")
            ready = subprocess.run([str(self.bin_dir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p",
                                    str(self.port), "-t", "1"], env=self._env(), capture_output=True)
            if ready.returncode == 0:
                return
            if time.monotonic() >= deadline:
                self.stop(remove=False)
                raise PostgresError(f"postgres did not accept connections within {timeout:g} s:\n"
                                    f"{self._log_tail()}")
            time.sleep(0.05)  # pg_isready is the poll; this only spaces the probes

    def _log_tail(self, lines: int = 20) -> str:
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(getattr(self, "_log_offset", 0))
                text = fh.read().decode("utf-8", "replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(no output)"

    def stop(self, timeout: float = 20, *, remove: bool | None = None) -> None:
        """Fast shutdown (rolls back open transactions); SIGKILL if it takes longer than
        ``timeout``. Removes the directory unless ``keep`` (or ``remove=False``)."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)  # = pg_ctl stop -m fast
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)  # the postmaster and its children
                proc.wait(10)
        if remove if remove is not None else not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- databases ---------------------------------------------------------------------
    def create_database(self, name: str, *, template: str | None = None) -> str:
        """Create database ``name`` (optionally a copy of ``template``) and return its URL."""
        for n in filter(None, (name, template)):
            if not _NAME.match(n):
                raise ValueError(f"not a plain database name: {n!r}")
        self.psql(f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else ""))
        return self.url(name)

    def drop_database(self, name: str) -> None:
        if not _NAME.match(name):
            raise ValueError(f"not a plain database name: {name!r}")
        self.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def __enter__(self) -> "PostgresServer":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """Start a server, create database ``gateway``, print its URL; stop on Ctrl-C."""
    with PostgresServer() as pg:
        print(pg.create_database("gateway"), flush=True)
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
    return 0


if __name__ == "__main__":
    sys.exit(main())


def kept_server(where: Path) -> tuple[PostgresServer, bool]:
    """A private server whose directory is ``where`` (kept on exit, for a bench to reuse its data),
    and whether it held data already (then its password is the one saved there at creation,
    readable by its owner only)."""
    where = where.resolve()
    server = PostgresServer(prefix="gw-bench-pg-", keep=True)
    fresh_dir = server.dir
    secret = where / "bench-password"
    reuse = (where / "data").is_dir() and secret.is_file()
    if not reuse:
        where.mkdir(parents=True, exist_ok=True)
        secret.write_text(server.password)
        secret.chmod(0o600)
    server.dir, server.data, server.log_path = where, where / "data", where / "postgres.log"
    server.password = secret.read_text().strip()
    fresh_dir.rmdir()
    return server, reuse
