"""The production package stands without the development harness (issue 11).

``gateway_dev`` (sandbox Asterisk, simulated calls, the end-to-end system) is imported only
inside the commands that use it: importing any module of ``gateway`` loads none of it, and
those commands say in one line what is missing when it is not installed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

IMPORT_ALL = """
import importlib, json, pkgutil, sys
import gateway
modules = []
for info in pkgutil.walk_packages(gateway.__path__, "gateway.", onerror=lambda name: sys.exit(f"cannot import {name}")):
    importlib.import_module(info.name)
    modules.append(info.name)
loaded = sorted(m for m in sys.modules if m == "gateway_dev" or m.startswith("gateway_dev."))
print(json.dumps({"modules": modules, "gateway_dev": loaded}))
"""

# The command run with gateway_dev absent, as in an installation without it.
WITHOUT_DEV = """
import sys
sys.modules["gateway_dev"] = None  # any import of it now fails as if it were not installed
from gateway.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _python(code: str, *args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(PYTHONPATH=str(ROOT), GATEWAY_STATE_DIR=str(tmp_path / "state"),
               GATEWAY_CACHE_DIR=str(tmp_path / "cache"))
    return subprocess.run([sys.executable, "-c", code, *args], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)


def test_given_every_gateway_module_imported_then_no_gateway_dev_module_is_loaded(tmp_path):
    proc = _python(IMPORT_ALL, tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert {"gateway.cli", "gateway.app", "gateway.pbx.ami", "gateway.settings"} <= set(result["modules"])
    assert result["gateway_dev"] == []


@pytest.mark.parametrize("argv", [["sandbox", "status"], ["call", "12345", "--digits", "1"], ["setup"]])
def test_given_no_gateway_dev_when_a_dev_command_runs_then_one_clear_line(tmp_path, argv):
    proc = _python(WITHOUT_DEV, *argv, tmp_path=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "error: this command needs the development harness (the gateway_dev package), which this "
        "installation does not include: run it from a checkout (pip install -e .)"]
    assert not (tmp_path / "cache").exists()  # refused before provisioning anything


def test_given_no_gateway_dev_then_production_commands_still_work(tmp_path):
    proc = _python(WITHOUT_DEV, "config", "check", str(ROOT / "config"), "--json", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["ok"] is True
