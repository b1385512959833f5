"""Kokoro-82M v1.0 (int8 ONNX) on onnxruntime: Mandarin text in, 24 kHz float audio out.

How the model is fed (the contract of the v1.0 ONNX export): the text becomes phonemes
(misaki's Chinese G2P: jieba words, pypinyin, IPA with tone arrows), each phoneme a token
id from the model's vocabulary (``voices/vocab.json``; unknown symbols are dropped); the
ids are framed by the pad id 0 on both sides. The style vector is row ``len(ids)`` of the
voice's table (510 x 1 x 256: one style per utterance length), and ``speed`` scales the
durations. At most 510 ids fit with their pads, so long texts are spoken sentence by
sentence and the pieces joined with a short pause.

One :class:`KokoroVoice` per process holds the session (about 0.5 s to load); onnxruntime's
``run`` is safe to call from several threads at once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from pathlib import Path

import numpy as np

from gateway.tts import model as model_file
from gateway.tts.errors import ModelError, TtsError

log = logging.getLogger(__name__)

SAMPLE_RATE = 24_000
MAX_TOKENS = 510 - 2  # the style table has 510 rows; two pads frame the ids
VOICES_DIR = Path(__file__).resolve().parent / "voices"
VOICE_SHAPE = (510, 1, 256)
_PAUSE = np.zeros(int(0.25 * SAMPLE_RATE), dtype=np.float32)
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+")


def _pinned() -> dict[str, str]:
    out = {}
    for line in (VOICES_DIR / "SHA256SUMS").read_text(encoding="ascii").splitlines():
        digest, _, name = line.partition("  ")
        if digest and name:
            out[name.strip()] = digest.strip()
    return out


def voice_names() -> list[str]:
    return sorted(n[:-4] for n in _pinned() if n.endswith(".bin"))


def _read_checked(name: str) -> bytes:
    pinned = _pinned().get(name)
    if pinned is None:
        raise ModelError(f"{name} is not one of the vendored voice files ({', '.join(voice_names())})")
    blob = (VOICES_DIR / name).read_bytes()
    if hashlib.sha256(blob).hexdigest() != pinned:
        raise ModelError(f"{VOICES_DIR / name} does not match its sha256 in SHA256SUMS: refusing it")
    return blob


def load_voice(name: str) -> np.ndarray:
    """A voice's style table (510, 1, 256), after checking its sha256."""
    blob = _read_checked(f"{name}.bin")
    table = np.frombuffer(blob, dtype="<f4")
    if table.size != int(np.prod(VOICE_SHAPE)):
        raise ModelError(f"voice {name}: {table.size} floats, not {VOICE_SHAPE}")
    return table.reshape(VOICE_SHAPE).astype(np.float32)


def load_vocab() -> dict[str, int]:
    return json.loads(_read_checked("vocab.json").decode("utf-8"))["vocab"]


class Phonemizer:
    """Mandarin text (already normalised, no digits) to Kokoro phonemes with misaki."""

    def __init__(self) -> None:
        try:
            import jieba
            from misaki import zh
        except ImportError as exc:
            raise ModelError(f"the Chinese G2P is not installed ({exc.name}; pip install -e '.[tts]')") from None
        jieba.setLogLevel(logging.WARNING)
        self._g2p = zh.ZHG2P()  # the v1.0 frontend: needs no pypinyin-dict data
        self._lock = threading.Lock()  # jieba's lazy initialisation is not thread-safe

    def __call__(self, text: str) -> str:
        with self._lock:
            phonemes, _ = self._g2p(text)
        return phonemes or ""


class KokoroVoice:
    """The loaded model with its vocabulary; synthesises with any vendored voice."""

    def __init__(self, model_path: Path, *, threads: int = 2) -> None:
        model_file.verify(model_path)  # size and sha256 before onnxruntime sees a byte
        try:
            import onnxruntime as ort
        except ImportError:
            raise ModelError("onnxruntime is not installed (pip install -e '.[tts]')") from None
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types
            raise ModelError(f"onnxruntime could not load {model_path}: {exc}") from exc
        names = {i.name for i in self._session.get_inputs()}
        if names != {"tokens", "style", "speed"}:
            raise ModelError(f"{model_path}: unexpected model inputs {sorted(names)}")
        self.model_path = Path(model_path)
        self._vocab = load_vocab()
        self._phonemize = Phonemizer()
        self._voices: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def voice(self, name: str) -> np.ndarray:
        with self._lock:
            if name not in self._voices:
                self._voices[name] = load_voice(name)
            return self._voices[name]

    def tokens(self, phonemes: str) -> list[int]:
        return [self._vocab[p] for p in phonemes if p in self._vocab]

    def _chunks(self, phonemes: str) -> list[list[int]]:
        out: list[list[int]] = []
        for sentence in _SENTENCE_END.split(phonemes):
            ids = self.tokens(sentence.strip())
            while ids:
                out.append(ids[:MAX_TOKENS])
                ids = ids[MAX_TOKENS:]
        return out

    def synthesize(self, text: str, *, voice: str = "zf_xiaobei", speed: float = 1.0) -> np.ndarray:
        """24 kHz mono float32 audio of ``text`` (already normalised)."""
        if not 0.5 <= speed <= 2.0:
            raise TtsError(f"speed {speed} is outside 0.5..2.0")
        table = self.voice(voice)
        phonemes = self._phonemize(text)
        chunks = self._chunks(phonemes)
        if not chunks:
            raise TtsError(f"nothing to say in {text!r}")
        pieces: list[np.ndarray] = []
        for ids in chunks:
            style = table[len(ids)]  # (1, 256): the style for an utterance of this length
            audio = self._session.run(None, {
                "tokens": np.array([[0, *ids, 0]], dtype=np.int64),
                "style": style.astype(np.float32),
                "speed": np.array([speed], dtype=np.float32),
            })[0]
            if pieces:
                pieces.append(_PAUSE)
            pieces.append(np.asarray(audio, dtype=np.float32).reshape(-1))
        return np.concatenate(pieces)
