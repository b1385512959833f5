"""Who may see what of a call and its ticket (pure rules of the desk).

Who sees the caller's number: supervisors and admins, and the agent whose call it
is (to call back); other agents see it masked. What the caller *said* (transcript,
word times, the guard's words, the recording) is shown only to supervisors, admins
and the agent who answered the call, whatever the ticket's status: another agent
may read a decided ticket's fields (category, place, summary, units) and nothing
the caller said. What goes to handling units (the dispatch document) never carries
the number of a caller who asked for confidentiality (保密), and otherwise only
masked. An emergency transfer is the answering agent's (or a supervisor's) to make.
"""

from __future__ import annotations

from gateway.errors import GatewayError
from gateway.masking import mask_number, mask_text
from gateway.pii import mask_personal, mask_words

FULL_NUMBER_ROLES = ("supervisor", "admin")


def may_see_number(viewer: dict, call_agent: str | None) -> bool:
    if viewer.get("role") in FULL_NUMBER_ROLES:
        return True
    return answered_by(viewer, call_agent)


def may_hear_caller(viewer: dict, call_agent: str | None) -> bool:
    """Transcripts and recordings: supervisors, admins and the agent who answered the call."""
    return may_see_number(viewer, call_agent)


class NotYourCall(GatewayError):
    """What a caller said belongs to the agent who answered (and supervisors), at any status."""

    status_code = 403
    error_id = "not-your-call"


def check_hearing(viewer: dict, call_agent: str | None, ticket_id: int) -> None:
    if not may_hear_caller(viewer, call_agent):
        raise NotYourCall("只有接听该来电的坐席和班长可以收听录音 / only the agent who answered this call and "
                          "supervisors may hear its recording", details={"ticket_id": ticket_id})


SPOKEN = ("transcript", "transcript_words", "emergency_words", "transcript_error")


class DraftLocked(GatewayError):
    """Another agent's call: its draft is theirs until decided (supervisors may take over)."""

    status_code = 403
    error_id = "locked"


def check_lock(ticket: dict, viewer: dict, call_agent: str | None) -> None:
    """An agent may open a draft only of a call they answered (or one nobody answered)."""
    if viewer.get("role") != "agent" or ticket.get("status") != "draft" or not call_agent:
        return
    if viewer.get("agent_id") != call_agent:
        raise DraftLocked(f"此草稿由坐席 {call_agent} 受理中 / this draft belongs to agent {call_agent} "
                          "until it is submitted or closed", details={"agent": call_agent})


def ticket_view(ticket: dict, viewer: dict, *, call_agent: str | None) -> dict:
    """The ticket as ``viewer`` may see it (the caller's number masked unless allowed)."""
    out = dict(ticket)
    full = may_see_number(viewer, call_agent)
    out["caller_number"] = ticket["caller_number"] if full else mask_number(ticket["caller_number"])
    if ticket.get("caller_id_raw") and not full:
        out["caller_id_raw"] = mask_text(ticket["caller_id_raw"])
    out["caller_number_masked"] = not full
    out["recording_url"] = f"/api/tickets/{ticket['id']}/recording" if ticket.get("recording_path") else None
    out.pop("recording_path", None)
    if not may_hear_caller(viewer, call_agent):
        for key in SPOKEN:
            out.pop(key, None)
        out["recording_url"] = None
        out["spoken_withheld"] = True  # the desk says why there is nothing to read or play
    elif not answered_by(viewer, call_agent):
        out.update(mask_spoken(ticket))  # supervisors and admins: identifiers masked
    return out


def answered_by(viewer: dict, call_agent: str | None) -> bool:
    return bool(viewer.get("agent_id")) and viewer.get("agent_id") == call_agent


def mask_spoken(ticket: dict) -> dict:
    """What the caller said with identity, phone and bank card numbers and plates masked
    (:mod:`gateway.pii`): for everyone but the agent who answered the call."""
    return {"transcript": mask_personal(ticket.get("transcript") or "") or ticket.get("transcript"),
            "transcript_words": mask_words(list(ticket.get("transcript_words") or [])),
            "personal_data_masked": True}


def dispatch_document(ticket: dict) -> dict:
    """What a handling unit receives: never the number of a caller who asked for confidentiality."""
    keep = ("id", "category", "urgency", "place", "summary", "dispatch_mode", "units", "line_number",
            "line_name", "created_at", "decided_at", "linked_ticket_id", "emergency")
    out = {k: ticket.get(k) for k in keep}
    if ticket.get("confidential"):
        for key in ("place", "summary"):  # what the agent typed may quote the caller's numbers
            if out.get(key):
                out[key] = mask_personal(out[key])
        out["caller_number"] = None
        out["caller"] = "保密 (confidential: contact through 12345)"
    else:
        out["caller_number"] = mask_number(ticket.get("caller_number"))
    return out


class CallEnded(GatewayError):
    """The call is over: there is no caller left to transfer."""

    status_code = 409
    error_id = "call-ended"


class AlreadyTransferred(GatewayError):
    status_code = 409
    error_id = "already-transferred"


class UnknownService(GatewayError):
    status_code = 400
    error_id = "unknown-service"


TRANSFER_ROLES = ("supervisor", "admin")


def check_transfer(viewer: dict, call_agent: str | None, ticket_id: int) -> None:
    """Only the agent who answered the call (or a supervisor/admin) may transfer its caller."""
    if viewer.get("role") in TRANSFER_ROLES or answered_by(viewer, call_agent):
        return
    raise NotYourCall("只有接听该来电的坐席和班长可以转接 / only the agent who answered this call and supervisors "
                      "may transfer it", details={"ticket_id": ticket_id})


def transfer_choices(transfers: dict) -> list[dict]:
    """The destinations as the desk shows them (service, name, kind): not the dial strings."""
    return [{"service": t.service, "name": t.name, "kind": "queue" if t.queue else "dial"}
            for t in transfers.values()]
