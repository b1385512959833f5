"""Errors of the text-to-speech layer (a branch of the gateway's one exception tree)."""

from __future__ import annotations

from gateway.errors import GatewayError


class TtsError(GatewayError):
    """Speech could not be synthesised."""

    error_id = "tts-error"


class ModelError(TtsError):
    """A voice model is missing, or is not the pinned file: it is never loaded."""

    error_id = "tts-model"
