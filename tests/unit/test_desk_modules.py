"""The agent desk's ES modules (gateway/web/static/desk/) as files: every relative import names
a module that exists and exports the names taken, and the imports form layers (no module imports
one that imports it back, directly or through others). No browser: their import lines are read."""

from __future__ import annotations

import re
from pathlib import Path

DESK = Path(__file__).resolve().parents[2] / "gateway" / "web" / "static" / "desk"
IMPORT = re.compile(r'^import \{([^}]*)\} from "(\.{1,2}/[^"]+)";', re.M)
EXPORT = re.compile(r"^export (?:async )?(?:function|const|let|class) ([\w$]+)", re.M)


def _imports(path: Path) -> list[tuple[Path, list[str]]]:
    return [((path.parent / target).resolve(), [n.strip() for n in names.split(",") if n.strip()])
            for names, target in IMPORT.findall(path.read_text(encoding="utf-8"))]


def test_given_the_desk_modules_when_their_imports_are_read_then_each_names_an_export_that_exists():
    modules = sorted(DESK.glob("*.js"))
    assert len(modules) >= 10
    for path in modules:
        for target, names in _imports(path):
            assert target.is_file(), f"{path.name} imports {target}, which does not exist"
            exported = set(EXPORT.findall(target.read_text(encoding="utf-8")))
            missing = [n for n in names if n not in exported]
            assert not missing, f"{path.name} takes {missing} from {target.name}, which does not export them"


def test_given_the_desk_modules_when_their_imports_are_followed_then_none_leads_back_to_itself():
    graph = {p.name: [t.name for t, _ in _imports(p) if t.parent == DESK] for p in DESK.glob("*.js")}
    assert graph["main.js"], "main.js imports the desk's other modules"
    for start in graph:
        seen: set[str] = set()
        todo = list(graph[start])
        while todo:
            name = todo.pop()
            assert name != start, f"{start} is imported back by a module it imports (directly or through others)"
            if name not in seen:
                seen.add(name)
                todo.extend(graph.get(name, []))
