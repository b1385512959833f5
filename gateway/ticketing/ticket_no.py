"""Ticket numbers the caller hears, keys and reads in an SMS (issue 13).

Theory of operation
-------------------
A ticket number is 11 digits, the length of a Chinese mobile number, which callers are used
to hearing and keying: ``MMDD`` (the day it was filed, in the centre's time zone), six random
digits, and a Damm check digit. It is never the database id: two tickets of the same day are
not guessable from each other (one in a million), and the check digit catches every
single-digit slip and every swap of two neighbouring digits before the database is asked.

The number is made in the gateway, when the call's ticket is first written (the call path
writes through the journal, so the caller hears the number even while the database is
down); uniqueness is the database's ``uq_tickets_ticket_no``. A collision (a few per day
at tens of thousands of tickets a day) is met by drawing again before the number is spoken.

Pure functions; no I/O.
"""

from __future__ import annotations

import re
import secrets
from datetime import date

LENGTH = 11
RANDOM_DIGITS = 6

# Damm's quasigroup of order 10 (weakly totally anti-symmetric): detects all single-digit
# errors and all adjacent transpositions.
_DAMM = (
    (0, 3, 1, 7, 5, 9, 8, 6, 4, 2),
    (7, 0, 9, 2, 1, 5, 4, 8, 6, 3),
    (4, 2, 0, 6, 8, 7, 1, 3, 5, 9),
    (1, 7, 5, 0, 9, 8, 3, 4, 2, 6),
    (6, 1, 2, 3, 0, 4, 5, 9, 7, 8),
    (3, 6, 7, 4, 2, 0, 9, 5, 8, 1),
    (5, 8, 6, 9, 7, 2, 0, 1, 3, 4),
    (8, 9, 4, 5, 3, 6, 2, 0, 1, 7),
    (9, 4, 3, 8, 6, 1, 7, 2, 0, 5),
    (2, 5, 8, 1, 4, 3, 6, 7, 9, 0),
)

_SEPARATORS = re.compile(r"[\s\-－—_·.]+")


class BadTicketNumber(ValueError):
    """What a caller keyed or an agent typed is not a ticket number (says why)."""


def damm(digits: str) -> int:
    interim = 0
    for ch in digits:
        interim = _DAMM[interim][ord(ch) - 48]
    return interim


def new_ticket_no(day: date, *, randbelow=secrets.randbelow) -> str:
    """A fresh number for a ticket filed on ``day`` (local date of the centre)."""
    body = f"{day.month:02d}{day.day:02d}{randbelow(10 ** RANDOM_DIGITS):0{RANDOM_DIGITS}d}"
    return body + str(damm(body))


def parse_ticket_no(text: str) -> str:
    """The number in ``text`` (spaces and dashes allowed, full-width digits too), checked.

    Raises :class:`BadTicketNumber` with the reason: wrong length, not digits, no such
    day, or a failed check digit (a slip of one digit, or two neighbours swapped).
    """
    if not isinstance(text, str):
        raise BadTicketNumber("a ticket number is text")
    cleaned = _SEPARATORS.sub("", text.strip()).translate(_FULL_WIDTH)
    if cleaned and (not cleaned.isascii() or not cleaned.isdigit()):
        raise BadTicketNumber("a ticket number has digits only")
    if len(cleaned) != LENGTH:
        raise BadTicketNumber(f"a ticket number has {LENGTH} digits, not {len(cleaned)}")
    month, day = int(cleaned[:2]), int(cleaned[2:4])
    if not (1 <= month <= 12 and 1 <= day <= 31):
        raise BadTicketNumber("a ticket number starts with the month and day it was filed")
    if damm(cleaned) != 0:
        raise BadTicketNumber("the check digit does not match (a digit mistyped or two swapped)")
    return cleaned


def is_ticket_no(text: str) -> bool:
    try:
        parse_ticket_no(text)
    except BadTicketNumber:
        return False
    return True


def spoken_groups(ticket_no: str) -> list[str]:
    """How the number is read out: 4-3-4, like a mobile number (each group digit by digit)."""
    return [ticket_no[:4], ticket_no[4:7], ticket_no[7:]]


_FULL_WIDTH = str.maketrans("０１２３４５６７８９", "0123456789")
