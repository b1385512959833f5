"""The bodies the units API takes (``gateway.units.http``), as :mod:`gateway.web.schema` models."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from gateway.web.schema import Body, text

Reason = text(2000, strip=True, required=True, no_control=True)


class ObjectBody(Body):
    """派单异议: why this ticket is not the unit's (required)."""

    reason: Reason


class NoteBody(Body):
    """A progress note; ``public``: the caller may hear it by phone (else internal to the hotline)."""

    text: text(4000, strip=True, required=True, no_control=True)
    public: bool = Field(default=False, description="the caller may hear it (progress by phone)")


class ReplyBody(Body):
    """办结: the result, in words the caller will hear (required)."""

    result: text(4000, strip=True, required=True, no_control=True)


class AcceptBody(Body):
    """签收 (nothing to say)."""


class ReviewBody(Body):
    version_id: int = Field(ge=0, le=2**31 - 1, description="the ticket version the supervisor loaded")
    reason: Reason


class RedispatchBody(ReviewBody):
    units: Annotated[list[text(64, strip=True, required=True)], Field(min_length=1, max_length=5)] = Field(
        description="catalogue unit ids (config/catalogue.yaml)")


BODIES = {
    ("POST", "/api/unit/dispatches/{dispatch_id}/accept"): AcceptBody,
    ("POST", "/api/unit/dispatches/{dispatch_id}/object"): ObjectBody,
    ("POST", "/api/unit/dispatches/{dispatch_id}/notes"): NoteBody,
    ("POST", "/api/unit/dispatches/{dispatch_id}/reply"): ReplyBody,
    ("POST", "/api/supervisor/review/{ticket_id}/redispatch"): RedispatchBody,
    ("POST", "/api/supervisor/review/{ticket_id}/reject"): ReviewBody,
    ("POST", "/api/supervisor/review/{ticket_id}/close"): ReviewBody,
}
