"""Texts spoken live during a call (progress by phone): the project's voice, off the event loop,
cached on disk by a hash of what is spoken.

Theory of operation: :meth:`LiveVoice.say` normalises the text for the telephone exactly as
the prompts are (:func:`gateway.tts.spoken_text`), names the audio by a hash of (engine,
voice, spoken text) and looks for ``<dir>/<digest>.wav``. A hit is touched (its mtime is the
LRU clock) and played at once. A miss is rendered by :func:`gateway.tts.render_wav` on the
voice's own single worker thread (Kokoro is one ONNX session; two renders at once would only
take turns), at most ``max_pending`` waiting; the call waits at most ``timeout`` seconds. A
render that is too slow still finishes in the background and lands in the cache, so the next
caller asking about the same ticket hears it at once. After each new file the directory is
pruned: files older than ``max_age`` go, then the least recently used until it is under
``max_bytes``. The directory lies under the prompts directory (Asterisk plays from there);
:func:`gateway.pbx.prompts.render_all` only removes stale ``*.wav`` at its top level.

The cache holds spoken replies about citizens' requests: it is bounded in age as well as in
size, and the files are named by hash (no ticket number, no phone number).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from gateway import tts
from gateway.ivr_flows.progress import SpeechFailed

log = logging.getLogger(__name__)
LIVE_VERSION = "1"  # bump to invalidate every cached live text
LIVE_DIR = "live"  # under the prompts directory; prompt ids are "live/<digest>"


def digest_of(spoken: str, engine: str, voice: str) -> str:
    blob = f"{LIVE_VERSION}\0{engine}\0{voice}\0{spoken}".encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:24]


class LiveVoice:
    def __init__(self, folder: Path, *, language: str = "cmn", timeout: float = 8.0, max_bytes: int = 50 << 20,
                 max_age: float = 7 * 86400, max_pending: int = 8,
                 render: Callable[[str, Path], dict] | None = None) -> None:
        self.folder = Path(folder)
        self.language = language
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.max_pending = max_pending
        self._render = render or (lambda text, path: tts.render_wav(text, path, language=language))
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="live-voice")
        self._pending = 0
        self._warm = None  # the warm-up job, once started
        self.stats = {"hits": 0, "rendered": 0, "failed": 0, "too_slow": 0, "busy": 0, "last_render_s": None}

    def key_of(self, text: str) -> tuple[str, str]:
        """(prompt id, spoken text) of ``text`` with the engine that speaks it now."""
        spoken = tts.spoken_text(text, self.language)
        engine, voice = tts.engine_for(self.language)
        return f"{LIVE_DIR}/{digest_of(spoken, engine, voice)}", spoken

    def path_of(self, key: str) -> Path:
        return self.folder / f"{key.split('/', 1)[1]}.wav"

    async def say(self, text: str) -> str:
        """The prompt id of ``text`` spoken (cached or rendered now); raises SpeechFailed."""
        key, _spoken = self.key_of(text)
        path = self.path_of(key)
        if await asyncio.to_thread(_touch, path):
            self.stats["hits"] += 1
            return key
        if self._pending >= self.max_pending:
            self.stats["busy"] += 1
            raise SpeechFailed(f"{self._pending} live texts already waiting for the voice")
        loop = asyncio.get_running_loop()
        self._pending += 1
        job = loop.run_in_executor(self._executor, self._make, text, path)
        job.add_done_callback(self._finished)
        try:
            await asyncio.wait_for(asyncio.shield(job), self.timeout)
        except asyncio.TimeoutError:
            self.stats["too_slow"] += 1
            raise SpeechFailed(f"the voice took longer than {self.timeout:g} s (still rendering, cached later)") from None
        except tts.TtsError as exc:
            raise SpeechFailed(f"the voice failed: {exc.message}") from None
        except OSError as exc:
            raise SpeechFailed(f"the live voice cannot write its audio: {exc.strerror or exc}") from None
        return key

    def _finished(self, job) -> None:
        self._pending -= 1
        if job.cancelled():
            return
        exc = job.exception()
        if exc is not None:
            self.stats["failed"] += 1
            log.warning("live voice: a text could not be spoken: %s", getattr(exc, "message", None) or exc)

    def _make(self, text: str, path: Path) -> None:
        """Blocking (the voice's thread): render into the cache atomically, then prune it."""
        if path.is_file():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix=".live-", dir=path.parent) as tmp:
            fresh = Path(tmp) / "new.wav"
            self._render(text, fresh)
            os.replace(fresh, path)
        self.stats["rendered"] += 1
        self.stats["last_render_s"] = round(time.monotonic() - started, 2)
        prune(path.parent, max_bytes=self.max_bytes, max_age=self.max_age, keep=path)

    def prepare(self) -> None:
        """Load the voice and its text front end (jieba, G2P) on the voice's thread by saying a
        word, once, without waiting: called when a caller enters the progress node, so the voice
        loads while they listen and key (a gateway nobody asks loads no model)."""
        if self._warm is None:
            self._warm = asyncio.get_running_loop().run_in_executor(self._executor, self._warm_up)
            self._warm.add_done_callback(lambda job: job.cancelled() or job.exception())

    async def warm_up(self) -> None:
        """:meth:`prepare`, waited for (the benchmark times it)."""
        self.prepare()
        try:
            await asyncio.shield(self._warm)
        except Exception as exc:  # noqa: BLE001 - the fallback prompt covers it at call time
            log.warning("live voice could not load: %s", exc)

    def _warm_up(self) -> None:
        with tempfile.TemporaryDirectory(prefix="gw-live-warm-") as tmp:
            self._render("您好。", Path(tmp) / "warm.wav")

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _touch(path: Path) -> bool:
    """True (and the file's mtime now: recently used) when ``path`` is a cached audio file."""
    try:
        os.utime(path)
    except FileNotFoundError:
        return False
    return True


def prune(folder: Path, *, max_bytes: int, max_age: float, keep: Path | None = None,
          now: float | None = None) -> list[Path]:
    """Drop files older than ``max_age`` seconds, then the least recently used over ``max_bytes``."""
    now = time.time() if now is None else now
    files = []
    for item in folder.glob("*.wav"):
        try:
            st = item.stat()
        except FileNotFoundError:
            continue
        files.append((st.st_mtime, st.st_size, item))
    files.sort()
    removed, total = [], sum(size for _m, size, _p in files)
    for mtime, size, item in files:
        if item == keep:
            continue
        if now - mtime > max_age or total > max_bytes:
            try:
                item.unlink()
            except FileNotFoundError:
                pass
            removed.append(item)
            total -= size
    return removed
