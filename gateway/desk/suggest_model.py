"""What goes into the desk's suggestions and what comes out (:mod:`gateway.desk.suggest`).

Inputs are built from the desk's ticket dicts (:meth:`TicketFacts.from_ticket`,
:meth:`PastTicket.from_ticket`; another caller's snippet is masked); the output,
:class:`Suggestions`, turns itself into the JSON the desk page shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.desk.catalogue import EscalationHit, PlaceHit, Unit
from gateway.desk.knowledge import KnowledgeHit
from gateway.pii import mask_personal

MODE_LABELS = {"direct": "直派", "dual": "双派"}


def quoted(words) -> str:
    """Words as 「a」「b」, how every reason names what was said."""
    return "".join(f"「{w}」" for w in words)


# -- inputs -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TicketFacts:
    transcript: str = ""
    category: str | None = None  # chosen in the IVR
    line_number: str | None = None
    line_name: str | None = None
    line_department: str | None = None
    merge_mode: str | None = None
    caller: str | None = None  # opaque: hashed or raw, only compared for equality
    emergency: bool = False
    emergency_words: tuple[str, ...] = ()
    confidential: bool = False
    received_at: datetime | None = None
    ticket_id: int | None = None

    @classmethod
    def from_ticket(cls, ticket: dict) -> "TicketFacts":
        """From a ticket as the store returns it (``gateway.ticketing.store``)."""
        return cls(ticket.get("transcript") or "", ticket.get("category"), ticket.get("line_number"),
                   ticket.get("line_name"), ticket.get("department"), ticket.get("merge_mode"),
                   ticket.get("caller_number") or None, bool(ticket.get("emergency")),
                   tuple(ticket.get("emergency_words") or ()), bool(ticket.get("confidential")),
                   _when(ticket.get("created_at")), ticket.get("id"))


@dataclass(frozen=True)
class PastTicket:
    id: int
    created_at: datetime | None
    category: str | None
    status: str
    place: str | None = None
    units: tuple[str, ...] = ()  # unit names it was dispatched to
    snippet: str = ""  # summary or the start of the transcript
    caller: str | None = None
    confidential: bool = False

    @classmethod
    def from_ticket(cls, ticket: dict) -> "PastTicket":
        units = tuple(u.get("name", "") for u in ticket.get("units") or () if isinstance(u, dict))
        # another caller's words, shown to this agent: their identifiers are masked
        snippet = mask_personal((ticket.get("summary") or ticket.get("transcript") or "")[:200])
        return cls(ticket["id"], _when(ticket.get("created_at")), ticket.get("category"), ticket.get("status", ""),
                   ticket.get("place"), units, snippet, ticket.get("caller_number") or None,
                   bool(ticket.get("confidential")))


def _when(value: Any) -> datetime | None:
    if isinstance(value, datetime) or value is None:
        return value
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


# -- outputs ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TypeSuggestion:
    category: str | None
    confidence: float
    reason: str
    matched: tuple[str, ...] = ()
    alternatives: tuple[tuple[str, tuple[str, ...]], ...] = ()  # other types with cues: (type, cues)


@dataclass(frozen=True)
class UrgencySuggestion:
    level: str  # normal | urgent | emergency
    reason: str
    matched: tuple[str, ...] = ()


@dataclass(frozen=True)
class UnitSuggestion:
    mode: str  # direct | dual
    units: tuple[Unit, ...]
    reason: str
    matched: tuple[str, ...] = ()
    source: str = "matter"  # escalation | matter | line | place
    matter: str | None = None
    missing: tuple[str, ...] = ()  # what the agent must still name ("street": the place is unknown)
    confidence: float = 0.5


@dataclass(frozen=True)
class HistoryMatch:
    ticket_id: int
    created_at: datetime | None
    category: str | None
    status: str
    snippet: str | None  # None: another caller's confidential ticket
    reason: str
    matched: tuple[str, ...] = ()
    same_demand: bool = False


@dataclass(frozen=True)
class Suggestions:
    request_type: TypeSuggestion
    urgency: UrgencySuggestion
    place: PlaceHit | None
    units: tuple[UnitSuggestion, ...]
    escalations: tuple[EscalationHit, ...] = ()
    answers: tuple[KnowledgeHit, ...] = ()
    earlier: tuple[HistoryMatch, ...] = ()
    similar_open: tuple[HistoryMatch, ...] = ()
    notes: tuple[str, ...] = ()
    catalogue_version: str = ""

    def to_json(self) -> dict:
        """JSON-safe: English keys, reasons in Chinese, dates as ISO text."""
        t, u = self.request_type, self.urgency
        return {
            "available": True,
            "catalogue_version": self.catalogue_version,
            "request_type": {"category": t.category, "confidence": t.confidence, "reason": t.reason,
                             "matched": list(t.matched),
                             "alternatives": [{"category": c, "matched": list(w)} for c, w in t.alternatives]},
            "urgency": {"level": u.level, "reason": u.reason, "matched": list(u.matched)},
            "place": None if self.place is None else {
                "label": self.place.label, "matched": list(self.place.matched),
                "district": _unit_json(self.place.district), "street": _unit_json(self.place.street)},
            "escalations": [{"kind": e.escalation.kind, "label": e.escalation.label, "matched": list(e.matched)}
                            for e in self.escalations],
            "units": [{"mode": s.mode, "mode_label": MODE_LABELS[s.mode], "units": [_unit_json(x) for x in s.units],
                       "reason": s.reason, "matched": list(s.matched), "source": s.source, "matter": s.matter,
                       "missing": list(s.missing), "confidence": s.confidence} for s in self.units],
            "answers": [{"id": h.entry.id, "title": h.entry.title, "answer": h.entry.answer,
                         "source": h.entry.source, "updated": h.entry.updated.isoformat(), "score": h.score,
                         "matched": list(h.matched), "reason": "匹配" + quoted(h.matched)}
                        for h in self.answers],
            "earlier": [_history_json(h) for h in self.earlier],
            "similar_open": [_history_json(h) for h in self.similar_open],
            "notes": list(self.notes),
        }


def _unit_json(unit: Unit | None) -> dict | None:
    return None if unit is None else {"id": unit.id, "name": unit.name, "kind": unit.kind}


def _history_json(h: HistoryMatch) -> dict:
    return {"ticket_id": h.ticket_id, "created_at": h.created_at.isoformat() if h.created_at else None,
            "category": h.category, "status": h.status, "snippet": h.snippet, "reason": h.reason,
            "matched": list(h.matched), "same_demand": h.same_demand}
