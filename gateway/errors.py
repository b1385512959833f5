"""One exception tree for the whole gateway.

Every error the gateway raises on purpose derives from :class:`GatewayError`.
Layers add their own branches; HTTP status codes are attached here as data and
applied only at the web edge (``gateway.web``).
"""

from __future__ import annotations


class GatewayError(Exception):
    """Root of every error the gateway raises on purpose."""

    status_code: int = 500
    error_id: str = "gateway-error"
    message_zh: str | None = None  # the Chinese for the web edge (gateway.web.problems); else from a table

    def __init__(self, message: str, *, details: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class ConfigError(GatewayError):
    """The configuration is invalid; ``problems`` lists every error found."""

    status_code = 422
    error_id = "invalid-config"

    def __init__(self, problems: list["ConfigProblem"]) -> None:  # noqa: F821
        self.problems = list(problems)
        lines = "\n".join(str(p) for p in self.problems)
        super().__init__(f"{len(self.problems)} configuration error(s):\n{lines}",
                         details={"problems": [p.as_dict() for p in self.problems]})


class SettingsError(GatewayError):
    """An environment setting has a bad value."""

    error_id = "invalid-setting"


class ProtocolError(GatewayError):
    """A wire protocol was broken."""


class LocalProtocolError(ProtocolError):
    """We broke the protocol (a bug on our side)."""


class RemoteProtocolError(ProtocolError):
    """The peer broke the protocol; the session with that peer ends."""


class ChannelHangup(GatewayError):
    """The caller (or Asterisk) hung up; the flow must stop."""


class PbxError(GatewayError):
    """Asterisk refused or failed a request."""

    status_code = 502
    error_id = "pbx-error"


class AmiTimeout(PbxError):
    error_id = "ami-timeout"


class AmiNotConnected(PbxError):
    status_code = 503
    error_id = "ami-not-connected"


class SandboxError(GatewayError):
    """The Asterisk sandbox could not be provisioned, started or stopped."""


class BadRequest(GatewayError):
    """A request the gateway cannot take as it is (malformed, too large, out of range)."""

    status_code = 400
    error_id = "bad-request"


class NotFound(GatewayError):
    status_code = 404
    error_id = "not-found"


class Conflict(GatewayError):
    """The object changed or was decided by someone else meanwhile (optimistic locking)."""

    status_code = 409
    error_id = "conflict"


class CallExists(Conflict):
    """A second IVR session for a call id that is already recorded (a replay, or a forged peer)."""

    error_id = "call-exists"


class TicketDecided(Conflict):
    """The IVR tried to change a ticket that an agent or supervisor has already decided."""

    error_id = "ticket-decided"

