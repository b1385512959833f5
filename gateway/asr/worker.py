"""A speech worker process: ``python -m gateway.asr.worker --model ko=NAME=DIR ...``.

Loads every model it is given once, says :class:`~gateway.asr.wire.Ready`, then serves
requests from stdin one at a time, in order: ``Started`` before it handles one, the reply
after, so the gateway always knows which request the worker is busy with. One Vosk
recogniser per open stream. Every request is validated again here (the framing does it
when it parses) before anything reaches Vosk; a bad request gets ``Rejected`` and the
worker goes on. A broken frame (out of step) ends the worker with status 3; the gateway
restarts it. Kaldi's own log goes to stderr (the gateway logs it); stdout carries only
frames: the real stdout is kept aside and fd 1 points at stderr, so a stray print from C
code cannot corrupt the protocol.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from gateway.asr import wire
from gateway.errors import RemoteProtocolError

MAX_STREAMS_PER_WORKER = 64


def _words(result: dict) -> tuple:
    return tuple((w["word"], float(w["start"]), float(w["end"]), float(w["conf"]))
                 for w in result.get("result", ()) if w.get("word"))


class Worker:
    def __init__(self, models: dict, names: dict, vosk_module) -> None:
        self.models = models  # language -> vosk.Model
        self.names = names
        self.vosk = vosk_module
        self.recognizers: dict = {}  # sid -> (KaldiRecognizer)

    def handle(self, msg) -> object:
        started = time.process_time()
        try:
            reply = self._handle(msg)
        except Exception as exc:  # noqa: BLE001 - e.g. Vosk failing to build a recogniser
            return wire.Rejected(msg.seq, msg.sid, f"{type(msg).__name__} failed: {exc}")
        busy = time.process_time() - started
        if isinstance(reply, (wire.Opened, wire.Heard, wire.Finished)):
            reply = type(reply)(**{**reply.__dict__, "busy": busy})
        return reply

    def _handle(self, msg):
        if isinstance(msg, wire.Open):
            return self._open(msg)
        if isinstance(msg, wire.Cancel):
            self.recognizers.pop(msg.sid, None)
            return wire.Closed(msg.seq, msg.sid)
        rec = self.recognizers.get(msg.sid)
        if rec is None:
            return wire.Rejected(msg.seq, msg.sid, f"stream {msg.sid} is not open")
        if isinstance(msg, wire.Audio):
            if rec.AcceptWaveform(msg.pcm):
                result = json.loads(rec.Result())
                return wire.Heard(msg.seq, msg.sid, result.get("text", ""), True, _words(result))
            partial = json.loads(rec.PartialResult()).get("partial", "")
            return wire.Heard(msg.seq, msg.sid, partial, False)
        # Finish
        result = json.loads(rec.FinalResult())
        del self.recognizers[msg.sid]
        return wire.Finished(msg.seq, msg.sid, result.get("text", ""), _words(result))

    def _open(self, msg: "wire.Open"):
        model = self.models.get(msg.language)
        if model is None:
            return wire.Rejected(msg.seq, msg.sid, f"no model for language {msg.language!r}")
        if msg.sid in self.recognizers:
            return wire.Rejected(msg.seq, msg.sid, f"stream {msg.sid} is already open")
        if len(self.recognizers) >= MAX_STREAMS_PER_WORKER:
            return wire.Rejected(msg.seq, msg.sid, f"more than {MAX_STREAMS_PER_WORKER} streams on one worker")
        wire.check_rate(msg.sample_rate)  # already checked when parsed; never let 0 or < 0 through
        dropped: tuple = ()
        if msg.grammar is None:
            rec = self.vosk.KaldiRecognizer(model, float(msg.sample_rate))
        else:
            kept = [w for w in dict.fromkeys(msg.grammar) if model.vosk_model_find_word(w) >= 0]
            dropped = tuple(w for w in dict.fromkeys(msg.grammar) if w not in kept)
            if not kept:
                return wire.Rejected(msg.seq, msg.sid, "none of the grammar words is in the model's vocabulary: "
                                     + ", ".join(dropped))
            rec = self.vosk.KaldiRecognizer(model, float(msg.sample_rate), json.dumps(kept, ensure_ascii=False))
        rec.SetWords(True)
        self.recognizers[msg.sid] = rec
        return wire.Opened(msg.seq, msg.sid, dropped)


def _parse_args(argv: list[str]) -> list[tuple[str, str, str]]:
    parser = argparse.ArgumentParser(prog="gateway.asr.worker")
    parser.add_argument("--model", action="append", default=[], metavar="LANG=NAME=DIR")
    args = parser.parse_args(argv)
    out = []
    for item in args.model:
        lang, sep, rest = item.partition("=")
        name, sep2, path = rest.partition("=")
        if not sep or not sep2:
            parser.error(f"--model must be LANG=NAME=DIR, got {item!r}")
        out.append((wire.check_language(lang), name, path))
    return out


def main(argv: list[str] | None = None) -> int:
    import signal

    # Ctrl-C in a terminal reaches the whole process group: the gateway stops its workers
    # itself (stdin closes), so a worker ignores SIGINT instead of dying with a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    specs = _parse_args(sys.argv[1:] if argv is None else argv)
    out_fd = os.dup(1)  # the protocol channel; fd 1 now goes to stderr
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    in_fd = sys.stdin.fileno()

    def send(msg) -> None:
        data = wire.encode(msg)
        while data:
            written = os.write(out_fd, data)
            data = data[written:]

    import vosk  # imported here so a worker without vosk still reports Ready with problems

    vosk.SetLogLevel(-1)  # warnings and errors only
    models, names, problems = {}, {}, {}
    for lang, name, path in specs:
        try:
            models[lang] = vosk.Model(path)
            names[lang] = name
        except Exception as exc:  # noqa: BLE001 - Vosk raises plain Exception for a bad model
            problems[lang] = f"{name} at {path} failed to load: {exc}"
    send(wire.Ready(0, 0, names, problems, os.getpid()))
    worker = Worker(models, names, vosk)
    reader = wire.FrameReader(accept=wire.REQUESTS)
    while True:
        data = os.read(in_fd, 1 << 16)
        if not data:
            try:
                reader.end_of_data()
            except RemoteProtocolError as exc:
                print(f"speech worker: {exc}", file=sys.stderr)
                return 3
            return 0
        reader.receive_data(data)
        while True:
            try:
                msg = reader.next_message()
            except wire.BadMessage as exc:
                send(wire.Started(exc.seq, exc.sid))
                send(wire.Rejected(exc.seq, exc.sid, exc.message))
                continue
            except RemoteProtocolError as exc:
                print(f"speech worker: broken frame from the gateway: {exc}", file=sys.stderr)
                return 3
            if msg is None:
                break
            send(wire.Started(msg.seq, msg.sid))
            send(worker.handle(msg))


if __name__ == "__main__":
    sys.exit(main())
