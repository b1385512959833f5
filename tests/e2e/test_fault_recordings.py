"""End to end, a full recordings disk: real sandbox Asterisk writing onto a tiny file system.

As root, a 2 MB tmpfs is mounted over the instance's recordings directory before the sandbox
starts (the sandbox bind-mounts the instance directory recursively, so Asterisk writes onto it)
and filled once the gateway is up. With a minimum of free space configured, a caller is not
recorded (goes on to the agent); with none, Asterisk's recording fails on the full disk. Either
way the ticket is flagged, the gateway logs a warning and ``/healthz`` says ``recordings`` is
degraded. The tmpfs is unmounted in teardown.
"""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import subprocess

import pytest

from gateway_dev.eventually import eventually
from gateway_dev.simcall import CallScript, place_call
from gateway_dev.system import System

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300),
              pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")]


def _fill(directory) -> None:
    """Fill the file system of ``directory`` to the last byte."""
    with open(directory / "filler.bin", "wb", buffering=0) as fh:
        chunk = b"\0" * 65536
        while True:
            try:
                fh.write(chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                if len(chunk) == 1:
                    return
                chunk = chunk[: len(chunk) // 2]


@pytest.fixture(scope="module")
def system():
    # tell_number=False: the callers do not hear their ticket number read (12 s a call, after the
    # recording under test; the reading is test_ticket_number.py's)
    sysm = System(prefix="gw-e2e-recdisk-", log_level="INFO", tell_number=False)
    sysm.env.update({"GATEWAY_SPEECH": "off", "GATEWAY_RECORDINGS_MIN_FREE_MB": "0.5"})
    recordings = sysm.gateway_settings.recordings_dir
    recordings.mkdir(mode=0o700, parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(recordings)], check=True)
    try:
        sysm.up()
        yield sysm
    finally:
        try:
            sysm.down()
        finally:
            subprocess.run(["umount", str(recordings)], check=False)
            shutil.rmtree(sysm.state, ignore_errors=True)


def _call(system: System, uid: str) -> dict:
    return asyncio.run(place_call(system.settings, CallScript(number="12345", caller="13900000051", digits="41",
                                                              uniqueid=uid, timeout=150)))


def _ticket(system: System, ticket_id: int) -> dict:
    status, body = system.http(f"/api/tickets/{ticket_id}", token=system.token())
    assert status == 200, body
    return body


def _health(system: System) -> tuple[int, dict]:
    return system.http("/healthz", token=system.token())


def test_given_a_full_recordings_disk_when_a_caller_describes_then_flagged_logged_and_degraded(system):
    recordings = system.gateway_settings.recordings_dir
    status, health = _health(system)
    assert status == 200 and health["recordings"]["free_mb"] >= 0.5, health
    _fill(recordings)
    pid = int((system.gateway_settings.instance_dir / "run" / "sandbox.pid").read_text().split()[0])
    assert os.path.exists(f"/proc/{pid}/root/srv/gw/recordings/filler.bin")  # Asterisk writes onto the tmpfs

    result = _call(system, "rec-low-1")
    assert result["agent"] and result["queue"] == "q-complaint", result  # the caller still reached an agent
    assert "describe(skipped)" in result["path"], result["path"]
    ticket = _ticket(system, result["ticket_id"])
    assert ticket["recording_problem"].startswith("disk_low: "), ticket
    assert not ticket.get("recording_url")

    status, health = _health(system)
    assert status == 503 and health["status"] == "degraded", health
    assert health["recordings"]["problems_recent"] >= 1 and health["recordings"]["free_mb"] < 0.5, health
    log = eventually(lambda: (t := system.log_path.read_text()) and "rec-low-1: recording problem: disk_low" in t
                     and t, timeout=10, what="the warning in the gateway's log")
    assert "WARNING" in next(ln for ln in log.splitlines() if "rec-low-1: recording problem" in ln)


def test_given_no_free_space_minimum_when_asterisk_records_onto_a_full_disk_then_the_ticket_is_flagged(system):
    system.stop_gateway()  # the same full disk, a gateway that no longer checks the space first
    system.env["GATEWAY_RECORDINGS_MIN_FREE_MB"] = "0"
    system.start_gateway()

    result = _call(system, "rec-full-2")
    assert result["agent"] and result["queue"] == "q-complaint", result
    ticket = _ticket(system, result["ticket_id"])
    assert ticket["recording_problem"] and ticket["recording_problem"].split(":")[0] in ("missing", "empty",
                                                                                         "truncated"), ticket
    status, health = _health(system)
    assert status == 503 and health["recordings"]["problems_recent"] >= 1, health
    assert "rec-full-2: recording problem: " in system.log_path.read_text()
