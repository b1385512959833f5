"""The bodies the admin API takes (``gateway.hotlines.http``), as :mod:`gateway.web.schema` models.

These check a request's *shape*: which keys, of which type, how long. What a line,
queue, schedule or broadcast may contain is the configuration's own schema, checked
on the whole proposed configuration (``gateway.ivr_flows.validate``: 422 with file,
line and field), and what needs live state (an unknown line, a line that exists
already) is the service's: 404 and 409 naming the field.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

from pydantic import Field

from gateway.web.schema import UNION_TAGS, AwareTime, Body, Comment, pattern_text, text

BODY_LIMIT = 256 * 1024  # an imported hotlines.yaml is the largest body (the app's client_max_size)
MAX_VERSION_ID = 2**31 - 1

# [0-9], not \d: "١٢٣٤٥" (Arabic-Indic digits) is not a number to dial
LineNumber = pattern_text(r"^[0-9]{3,20}$", "the dialled number, 3-20 digits 0-9", "拨打的号码，3-20 位数字（0-9）")
Keys = pattern_text(r"^[0-9*#]{0,20}$", "up to 20 keys of 0-9, * and #", "最多 20 个按键（0-9、*、#）",
                    max_length=20)
Name = text(200, required=True, no_control=True)


# -- change operations (gateway.hotlines.changes.apply_change) --------------------------------
class CreateLine(Body):
    op: Literal["create_line"]
    line: dict[str, Any] = Field(description="a line as in hotlines.yaml (number, name, mode, department, greeting, "
                                             "announcement, announce, queue, handled_by, hours, after_hours, "
                                             "overflow_seconds)")


class UpdateLine(Body):
    op: Literal["update_line"]
    number: LineNumber
    fields: dict[str, Any] = Field(description="the line's keys to change; null removes a key")


class RetireLine(Body):
    op: Literal["retire_line"]
    number: LineNumber
    announcement: Optional[text(2000)] = None


class UpsertQueue(Body):
    op: Literal["upsert_queue"]
    name: Name
    queue: dict[str, Any]


class UpsertSchedule(Body):
    op: Literal["upsert_schedule"]
    name: Name
    schedule: dict[str, Any]


class SetPublicHolidays(Body):
    op: Literal["set_public_holidays"]
    year: Name
    holidays: Optional[list[Any]] = None
    workdays: Optional[list[Any]] = None


class AddBroadcast(Body):
    op: Literal["add_broadcast"]
    broadcast: dict[str, Any]


class RemoveBroadcast(Body):
    op: Literal["remove_broadcast"]
    id: Name


class Replace(Body):
    op: Literal["replace"]
    hotlines_yaml: text(BODY_LIMIT, required=True)


OPERATIONS = (CreateLine, UpdateLine, RetireLine, UpsertQueue, UpsertSchedule, SetPublicHolidays, AddBroadcast,
              RemoveBroadcast, Replace)
Change = Annotated[Union[OPERATIONS], Field(discriminator="op")]  # type: ignore[valid-type]
UNION_TAGS.update(op.model_fields["op"].annotation.__args__[0] for op in OPERATIONS)


def change_dict(change: Body) -> dict:
    """The operation as the client sent it (what :func:`apply_change` takes and the version keeps)."""
    return change.model_dump(exclude_unset=True)


# -- request bodies ------------------------------------------------------------------------------
class ChangeRequest(Body):
    comment: Comment = Field(description="why (required, audited)")
    effective_at: Optional[AwareTime] = Field(None, description="apply later, at this time (with UTC offset); "
                                                                "omitted: now")


class ChangeBody(ChangeRequest):
    change: Change


class CreateLineBody(ChangeRequest):
    line: dict[str, Any] = Field(description=CreateLine.model_fields["line"].description)


class UpdateLineBody(ChangeRequest):
    fields: dict[str, Any] = Field(description=UpdateLine.model_fields["fields"].description)


class RetireLineBody(ChangeRequest):
    announcement: Optional[text(2000)] = Field(None, description="what callers of the retired number hear")


class ImportBody(ChangeRequest):
    hotlines_yaml: text(BODY_LIMIT, required=True)


class CommentBody(Body):
    """Roll back to a version, or cancel a scheduled one: why."""

    comment: Comment = Field(description="why (required, audited)")


class DryRunBody(Body):
    """What would a call do: the live configuration, a version, or a proposed change."""

    number: LineNumber
    at: Optional[AwareTime] = None
    digits: Optional[Keys] = None
    version: Optional[Annotated[int, Field(ge=1, le=MAX_VERSION_ID)]] = None
    change: Optional[Change] = None


class PreviewBody(Body):
    """A text to hear as callers will, before it is applied (``gateway.hotlines.preview``)."""

    text: text(500, required=True, single_line=True)


BODIES: dict[tuple[str, str], type[Body]] = {
    ("POST", "/api/admin/versions/{version_id}/rollback"): CommentBody,
    ("POST", "/api/admin/versions/{version_id}/cancel"): CommentBody,
    ("POST", "/api/admin/import"): ImportBody,
    ("POST", "/api/admin/changes"): ChangeBody,
    ("POST", "/api/admin/lines"): CreateLineBody,
    ("PATCH", "/api/admin/lines/{number}"): UpdateLineBody,
    ("POST", "/api/admin/lines/{number}/retire"): RetireLineBody,
    ("POST", "/api/admin/dry-run"): DryRunBody,
    ("POST", "/api/admin/prompts/preview"): PreviewBody,
}
