"""The production package stands without the development harness (issue 11).

``gateway_dev`` (sandbox Asterisk, simulated calls, the end-to-end system) is imported only
inside the commands that use it: importing any module of ``gateway`` loads none of it, and
those commands say in one line what is missing when it is not installed.
"""

from __future__ import annotations

import ast
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIRST_PARTY = ("gateway", "gateway_dev")

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


def _first_party_imports():
    """Every ``gateway``/``gateway_dev`` import in gateway/, module level or inside a function
    (lazy), and every ``_dev("name")`` of the CLI: (where, module, name imported from it)."""
    for path in sorted((ROOT / "gateway").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in FIRST_PARTY:
                yield from ((where, node.module, alias.name) for alias in node.names)
            elif isinstance(node, ast.Import):
                yield from ((where, alias.name, None) for alias in node.names
                            if alias.name.split(".")[0] in FIRST_PARTY)
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "_dev"
                  and node.args and isinstance(node.args[0], ast.Constant)):
                yield where, f"gateway_dev.{node.args[0].value}", None


def test_given_the_lazy_imports_of_gateway_then_each_names_something_that_exists():
    # Imports inside functions (the dev commands' gateway_dev, optional parts) run only when
    # the function does: a moved module would break a command and no import-time test.
    imports = list(_first_party_imports())
    assert any(module == "gateway_dev.simcall" for _, module, _ in imports)  # the call command's
    broken = []
    for where, module, name in imports:
        try:
            mod = importlib.import_module(module)
            if name is not None and not hasattr(mod, name):
                importlib.import_module(f"{module}.{name}")  # a submodule, e.g. from gateway import tts
        except ImportError as exc:
            broken.append(f"{where}: {module}{'.' + name if name else ''}: {exc}")
    assert broken == []
