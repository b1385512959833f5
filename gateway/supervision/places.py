"""Where a ticket is and what it is about, resolved once for the rates, the early warnings and the
reports: table ``ticket_places``.

Tickets carry the place as the agent wrote it (``tickets.place``, free text such as
"朝阳区工体北路8号"), the units they were dispatched to and a summary; the responsibility
catalogue (config/catalogue.yaml) knows which district and street/township a place name,
landmark or community belongs to (every district and street is a unit too) and which matter
(事项) a text names. :func:`resolve` reduces one ticket to

* **district, street/township** (catalogue unit ids), tried in this order: the ``place`` text
  (source ``place``); a dispatch to a street/township unit, else to a district unit (source
  ``dispatch``); the summary (source ``summary``); nothing found: no district and no street
  (source ``none``, counted under "未识别 unknown");
* **matter**: the first catalogue matter the summary names (the agent's words, not the
  caller's transcript: the agent's decision is what the hotline stands by), else none (the
  warnings then count the ticket under its request type, the reports under "其他");
* **address**: the ``place`` text normalised (NFKC, no spaces or punctuation) for the repeated
  demands, or none when too short to name an address;
* **hour**: the hour (since 1970, UTC) its call came in, the warnings' time axis.

One row per decided ticket (``submitted`` or ``answered``), never on the ticket itself: writing
the ticket would bump its version and make a concurrent unit's or agent's write lose. The row
remembers the ticket's ``version_id`` it was resolved from (``ticket_version``): a ticket edited
since (its place, summary, units) has another version and is resolved again. A row with no
version (written by a generator, or moved by migration 0020 from the warnings' former table) is
kept as it is; ``-1`` marks a row to resolve again.

:func:`resolve_places` is the only writer, in batches, for the tickets of a time range that have
no row or a stale one. The three readers call it the same way before they read: the rates before
a district or street ranking (and their job, for the last 40 days), the warnings at every run
(their look-back), the reports for their period. Run over a range without end it is the
backfill for old tickets. The catalogue's look-ups go through :class:`Lookups`, which answers
each distinct *reduced text* once (a month of tickets says the same few things).

The indexes the rates' GROUP BY queries rest on are declared here too (migration 0015).
"""

from __future__ import annotations

import asyncio
import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from gateway.desk.catalogue import Catalogue, MatterHit, PlaceHit, normalize
from gateway.ticketing.models import Base, Dispatch, Followup, RowId, Ticket, UtcDateTime

PLACE_SOURCES = ("place", "dispatch", "summary", "none", "moved")
DECIDED = ("submitted", "answered")  # a ticket counts once an agent decided it (a draft is not a request yet)
STALE = -1  # ticket_version of a row to resolve again
HOUR = 3600
BATCH = 2000


class TicketPlace(Base):
    """The district, street/township, matter and address of a decided ticket (module header)."""

    __tablename__ = "ticket_places"
    __table_args__ = (sa.Index("ix_ticket_places_district_street", "district_id", "street_id"),)

    ticket_id: Mapped[int] = mapped_column(RowId, sa.ForeignKey("tickets.id"), primary_key=True)
    district_id: Mapped[str | None] = mapped_column(sa.String(64))
    street_id: Mapped[str | None] = mapped_column(sa.String(64))
    source: Mapped[str] = mapped_column(sa.String(16))  # PLACE_SOURCES
    resolved_at: Mapped[datetime] = mapped_column(UtcDateTime())
    matter_id: Mapped[str | None] = mapped_column(sa.String(64))  # a catalogue matter id
    address: Mapped[str | None] = mapped_column(sa.String(200))  # address_key(place)
    hour: Mapped[int | None] = mapped_column(sa.Integer, index=True)  # hours since 1970 (UTC) of the call
    ticket_version: Mapped[int | None] = mapped_column(sa.Integer)  # tickets.version_id resolved from


# What the rates' queries filter and group on: submitted tickets by decision time (status first:
# SQLite then takes this index, not ix_tickets_status, whose range is every submitted ticket), then
# the dispatches and the follow-up of each, read from the indexes alone (covering).
sa.Index("ix_tickets_rates", Ticket.status, Ticket.decided_at, Ticket.handling)
sa.Index("ix_dispatches_rates", Dispatch.ticket_id, Dispatch.status, Dispatch.unit_id, Dispatch.accepted_at,
         Dispatch.due_at, Dispatch.created_at, Dispatch.unit_name)
sa.Index("ix_followups_rates", Followup.ticket_id, Followup.status, Followup.solved, Followup.satisfaction)


# -- one ticket ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Resolved:
    district: str | None  # catalogue unit ids
    street: str | None
    source: str  # PLACE_SOURCES
    matter: str | None = None  # a catalogue matter id
    address: str | None = None


_PUNCT = re.compile(r"[\s\W_]+", re.UNICODE)
_SPACE = re.compile(r"\s+")


def address_key(place: str | None) -> str | None:
    """``place`` normalised so the same address typed twice is one key (NFKC, no spaces or
    punctuation, lower case); None when too short to name an address."""
    text = _PUNCT.sub("", unicodedata.normalize("NFKC", place or "")).lower()
    return text[:200] if len(text) >= 4 else None


def hour_of(when: datetime) -> int:
    return int(when.timestamp() // HOUR)


def _hit(hit: PlaceHit, source: str) -> tuple[str | None, str | None, str]:
    return (hit.district.id if hit.district else None), (hit.street.id if hit.street else None), source


def resolve(catalogue, place: str | None, unit_ids: list[str] | tuple[str, ...] = (),
            summary: str | None = None) -> Resolved:
    """The :class:`Resolved` of one ticket (pure; ``catalogue`` a desk Catalogue or :class:`Lookups`)."""
    address = address_key(place)
    if catalogue is None:
        return Resolved(None, None, "none", None, address)
    hits = catalogue.find_matters(summary) if summary else []
    matter = hits[0].matter.id if hits else None
    found = catalogue.find_place(place) if place else None
    if found is not None:
        return Resolved(*_hit(found, "place"), matter, address)
    units = [catalogue.units.get(uid) for uid in unit_ids]
    for kinds in (("street", "township"), ("district",)):
        unit = next((u for u in units if u is not None and u.kind in kinds), None)
        if unit is not None:
            street = unit.id if unit.kind != "district" else None
            return Resolved(unit.district if street else unit.id, street, "dispatch", matter, address)
    found = catalogue.find_place(summary) if summary else None
    if found is not None:
        return Resolved(*_hit(found, "summary"), matter, address)
    return Resolved(None, None, "none", matter, address)


class Lookups:
    """The catalogue's ``find_place`` and ``find_matters`` for many tickets: a look-up costs
    ~0.3 ms (every unit and matter, word by word), so it runs once per distinct *reduced text*:
    the catalogue's words found in the text, in order of appearance, joined by ``|`` (which no
    word holds). The words present and their order are what the look-ups read, so the answer is
    the same; a text then costs one substring test per catalogue word."""

    MAX_CACHED = 100_000

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self.units = catalogue.units
        words: set[str] = set()
        for unit in catalogue.units.values():
            words.update(unit.place_words)
        for m in catalogue.matters:
            words.update(m.keywords)
            words.update(m.with_any)
        self.by_first: dict[str, list[str]] = {}
        for word in sorted({normalize(w) for w in words if normalize(w)}):
            self.by_first.setdefault(word[0], []).append(word)
        self._places: dict[str, PlaceHit | None] = {}
        self._matters: dict[str, list[MatterHit]] = {}

    def reduced(self, text: str | None) -> str:
        text = _normalize(text)
        found = [w for ch in set(text).intersection(self.by_first) for w in self.by_first[ch] if w in text]
        return "|".join(sorted(found, key=lambda w: (text.find(w), -len(w))))

    def _cached(self, cache: dict, text: str | None, find):
        key = self.reduced(text)
        if key not in cache:
            if len(cache) >= self.MAX_CACHED:
                cache.clear()
            cache[key] = find(key)
        return cache[key]

    def find_place(self, text: str | None) -> PlaceHit | None:
        return self._cached(self._places, text, self.catalogue.find_place)

    def find_matters(self, text: str | None) -> list[MatterHit]:
        return self._cached(self._matters, text, self.catalogue.find_matters)


def _normalize(text: str | None) -> str:
    """:func:`gateway.desk.catalogue.normalize` without its cache (every ticket's text is new) and
    without NFKC's cost when the text is NFKC already (almost always)."""
    if not text:
        return ""
    if not unicodedata.is_normalized("NFKC", text):
        text = unicodedata.normalize("NFKC", text)
    return _SPACE.sub("", text).lower()


# -- names ------------------------------------------------------------------------------------------
def place_name(catalogue: Catalogue | None, unit_id: str | None) -> str | None:
    """A district's or street's name as said (朝阳区), or None."""
    unit = catalogue.units.get(unit_id) if catalogue is not None and unit_id else None
    return (unit.place_name or unit.name) if unit is not None else None


def place_label(catalogue: Catalogue | None, district: str | None, street: str | None) -> str | None:
    """District then street as said (朝阳区三里屯街道), or None when neither is known."""
    return "".join(n for n in (place_name(catalogue, district), place_name(catalogue, street)) if n) or None


def matter_names(catalogue: Catalogue | None) -> dict[str, str]:
    return {m.id: m.name for m in catalogue.matters} if catalogue is not None else {}


# -- the table --------------------------------------------------------------------------------------
def _pending(since: datetime | None, until: datetime | None, on: str):
    """Ids of the decided tickets in the range without a row or with a stale one (oldest first)."""
    when = getattr(Ticket, on)
    stale = sa.and_(TicketPlace.ticket_version.is_not(None), TicketPlace.ticket_version != Ticket.version_id)
    stmt = (sa.select(Ticket.id).outerjoin(TicketPlace, TicketPlace.ticket_id == Ticket.id)
            .where(sa.or_(TicketPlace.ticket_id.is_(None), stale), Ticket.status.in_(DECIDED)))
    if since is not None:
        stmt = stmt.where(when >= since)
    if until is not None:
        stmt = stmt.where(when < until)
    return stmt.order_by(Ticket.id)


def _rows(lookups: Lookups, rows: list, units: dict[int, list[str]], now: datetime) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        found = resolve(lookups, r.place, units.get(r.id, []), r.summary)
        out.append({"ticket_id": r.id, "district_id": found.district, "street_id": found.street,
                    "source": found.source, "matter_id": found.matter, "address": found.address,
                    "hour": hour_of(r.created_at), "ticket_version": r.version_id, "resolved_at": now})
    return out


async def resolve_places(store, catalogue: Catalogue | None, now: datetime, *, since: datetime | None = None,
                         until: datetime | None = None, on: str = "decided_at", batch: int = BATCH,
                         max_batches: int | None = 50, lookups: Lookups | None = None) -> int:
    """Resolve the decided tickets whose ``on`` (``decided_at`` or ``created_at``) lies in
    ``[since, until)`` (either end open when None) that have no row or a stale one; returns how
    many rows were written. Nothing without a catalogue (a row would say "unknown" for good).
    ``max_batches=None`` goes on to the end (the backfill)."""
    if catalogue is None:
        return 0
    if on not in ("decided_at", "created_at"):
        raise ValueError(f"on must be decided_at or created_at, got {on!r}")
    lookups = lookups or Lookups(catalogue)
    pending = _pending(since, until, on)
    if max_batches is not None:
        pending = pending.limit(batch * max_batches)
    async with store.read_session() as session:  # the ids once, then batch by batch (no rescan per batch)
        todo = list((await session.execute(pending)).scalars())
    written = 0
    for at in range(0, len(todo), batch):
        ids = todo[at:at + batch]
        async with store.read_session() as session:
            rows = (await session.execute(sa.select(Ticket.id, Ticket.place, Ticket.summary, Ticket.created_at,
                                                    Ticket.version_id).where(Ticket.id.in_(ids)))).all()
            units: dict[int, list[str]] = {}
            for tid, uid in (await session.execute(sa.select(Dispatch.ticket_id, Dispatch.unit_id)
                                                   .where(Dispatch.ticket_id.in_(ids)).order_by(Dispatch.id))).all():
                units.setdefault(tid, []).append(uid)
        values = await asyncio.to_thread(_rows, lookups, rows, units, now)  # text matching: off the event loop
        written += await store.run_write(lambda session, values=values: _write(session, values))
    return written


async def _write(session, values: list[dict[str, Any]]) -> int:
    """Insert new rows, replace stale ones; a row another instance wrote meanwhile for the same
    version is left alone."""
    have = dict((await session.execute(sa.select(TicketPlace.ticket_id, TicketPlace.ticket_version).where(
        TicketPlace.ticket_id.in_([v["ticket_id"] for v in values])))).all())
    fresh = [v for v in values if v["ticket_id"] not in have]
    stale = [v for v in values if v["ticket_id"] in have and have[v["ticket_id"]] is not None
             and have[v["ticket_id"]] != v["ticket_version"]]
    if fresh:
        await session.execute(sa.insert(TicketPlace.__table__), fresh)  # Core executemany: no ORM bulk cost
    for v in stale:
        await session.execute(sa.update(TicketPlace).where(TicketPlace.ticket_id == v["ticket_id"])
                              .values({k: x for k, x in v.items() if k != "ticket_id"}))
    return len(fresh) + len(stale)


# -- the backfill ------------------------------------------------------------------------------------
async def backfill(since: datetime | None = None) -> int:
    """Resolve every decided ticket (decided since ``since``) without a row or with a stale one,
    with the installation's settings and catalogue; returns how many rows were written."""
    from gateway.desk.catalogue_load import load_catalogue  # noqa: PLC0415 - the command only
    from gateway.settings import load_settings  # noqa: PLC0415
    from gateway.ticketing import migrate  # noqa: PLC0415
    from gateway.ticketing.store import TicketStore  # noqa: PLC0415

    settings = load_settings()
    catalogue = await asyncio.to_thread(load_catalogue, settings.config_dir / "catalogue.yaml")
    await asyncio.to_thread(migrate.upgrade, settings.database_url)
    store = await TicketStore.open(settings.database_url)
    try:
        return await resolve_places(store, catalogue, datetime.now(timezone.utc), since=since, max_batches=None)
    finally:
        await store.close()


def main(argv: list[str] | None = None) -> int:
    """``python -m gateway.supervision.places [--since YYYY-MM-DD]``: the backfill for old tickets."""
    import argparse  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="python -m gateway.supervision.places",
                                     description="resolve the place and matter of old tickets (ticket_places)")
    parser.add_argument("--since", type=date.fromisoformat, help="only tickets decided on or after this day (UTC)")
    args = parser.parse_args(argv)
    since = datetime.combine(args.since, time(0), timezone.utc) if args.since else None
    print(f"{asyncio.run(backfill(since))} tickets resolved")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
