"""The bodies the desk API takes (``gateway.desk.http``), as :mod:`gateway.web.schema` models.

A decision (submit for dispatch, close as answered) carries the ticket version the
agent loaded; whether that version is still current is live state, checked by the
store (409 ``conflict``), not here.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional

from pydantic import ConfigDict, Field, ValidationInfo, field_validator

from gateway.ivr_flows.model import CATEGORIES, EMERGENCY_NUMBERS
from gateway.ticketing.models import DISPATCH_MODES, URGENCIES
from gateway.web.schema import Body, problem, text

MAX_ID = 10**12 - 1  # ticket ids are 1-12 ASCII digits in paths (gateway.web.app.ticket_id)

Category = Literal[CATEGORIES]  # type: ignore[valid-type]
Urgency = Literal[URGENCIES]  # type: ignore[valid-type]
DispatchMode = Literal[DISPATCH_MODES]  # type: ignore[valid-type]


class Unit(Body):
    """A handling unit a ticket is dispatched to (other keys are ignored, as before)."""

    model_config = ConfigDict(extra="ignore")

    id: Optional[text(64, strip=True)] = None
    name: text(100, strip=True, required=True)
    kind: Optional[text(32, strip=True)] = None


class Decision(Body):
    """What both decisions may carry; a field the other decision needs is accepted and ignored
    (the desk sends one form)."""

    version_id: int = Field(ge=0, le=2**31 - 1, description="the ticket version the agent loaded (optimistic lock)")
    category: Optional[Category] = None
    urgency: Optional[Urgency] = Field(None, description="normal when omitted")
    place: Optional[text(200, strip=True)] = None
    summary: Optional[text(4000, strip=True)] = None
    linked_ticket_id: Optional[Annotated[int, Field(ge=1, le=MAX_ID)]] = Field(
        None, description="an earlier ticket of the same demand")
    dispatch_mode: Optional[DispatchMode] = Field(None, description="直派 / 双派 (submit only)")
    units: Optional[Annotated[list[Unit], Field(max_length=5)]] = None
    answer: Optional[text(4000, strip=True)] = Field(None, description="the answer given on the call (close only)")
    followup_opt_out: Optional[bool] = Field(None, description="不需要回访: the caller refused the follow-up call")

    def fields(self) -> dict:
        """The fields the store keeps (blank text as none)."""
        return {"category": self.category, "urgency": self.urgency or "normal", "place": self.place or None,
                "summary": self.summary or None, "linked_ticket_id": self.linked_ticket_id,
                "followup_opt_out": self.followup_opt_out}


class SubmitBody(Decision):
    """Submit for dispatch (draft -> submitted): a category, a summary, the mode and 1-5 units."""

    category: Category
    summary: text(4000, strip=True, required=True)
    dispatch_mode: DispatchMode = Field(description="直派 direct / 双派 dual (two units or more)")
    units: Annotated[list[Unit], Field(min_length=1, max_length=5)]

    @field_validator("units")
    @classmethod
    def _dual_needs_two(cls, units: list[Unit], info: ValidationInfo) -> list[Unit]:
        if info.data.get("dispatch_mode") == "dual" and len(units) < 2:
            raise problem("dual_needs_two")
        return units

    def fields(self) -> dict:
        return {**super().fields(), "dispatch_mode": self.dispatch_mode,
                "units": [{"id": u.id or None, "name": u.name, "kind": u.kind or None} for u in self.units]}


class CloseBody(Decision):
    """Close as answered on the call (draft -> answered): the answer given."""

    answer: text(4000, strip=True, required=True)

    def fields(self) -> dict:
        return {**super().fields(), "answer": self.answer}


def decision_model(outcome: str) -> type[Decision]:
    return SubmitBody if outcome == "submitted" else CloseBody


class DraftBody(Body):
    """What the agent typed so far, kept until the ticket is decided (size-limited by the reader)."""

    data: dict[str, Any]


# route -> the model of its body (the OpenAPI document and its test read this)
class TransferBody(Body):
    """The emergency banner's action: which service the caller goes to."""

    service: Literal[tuple(sorted(EMERGENCY_NUMBERS))] = Field(  # type: ignore[valid-type]
        description="110 police, 119 fire, 120 ambulance, 122 traffic (each configured as a queue or dial string)")


BODIES: dict[tuple[str, str], type[Body]] = {
    ("PUT", "/api/desk/tickets/{ticket_id}/draft"): DraftBody,
    ("POST", "/api/desk/tickets/{ticket_id}/submit"): SubmitBody,
    ("POST", "/api/desk/tickets/{ticket_id}/close"): CloseBody,
    ("POST", "/api/desk/tickets/{ticket_id}/transfer"): TransferBody,
}
