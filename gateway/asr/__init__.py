"""Offline speech recognition (Vosk) in supervised worker processes.

``VoskEngine`` is built in the composition root from ``load_speech_config(path)``; the
rest of the gateway codes against the ``SpeechEngine``/``SpeechStream`` protocols.
"""

from gateway.asr.config import ModelSpec, SpeechConfig, load_speech_config, resolve_model_dir
from gateway.asr.engine import (
    AudioFileError,
    EngineUnavailable,
    Overloaded,
    Result,
    SpeechEngine,
    SpeechInputError,
    SpeechStream,
    SpeechTimeout,
    StreamFailed,
    Transcript,
    Word,
)
from gateway.asr.guard import find_emergency
from gateway.asr.vosk_engine import VoskEngine

__all__ = [
    "AudioFileError", "EngineUnavailable", "ModelSpec", "Overloaded", "Result", "SpeechConfig",
    "SpeechEngine", "SpeechInputError", "SpeechStream", "SpeechTimeout", "StreamFailed", "Transcript",
    "VoskEngine", "Word", "find_emergency", "load_speech_config", "resolve_model_dir",
]
