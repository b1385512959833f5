"""Ticket numbers: 11 digits, date + random + Damm check digit (gateway/ticketing/ticket_no.py)."""

from __future__ import annotations

import random
from datetime import date

import pytest

from gateway.ticketing.ticket_no import (
    LENGTH,
    BadTicketNumber,
    damm,
    is_ticket_no,
    new_ticket_no,
    parse_ticket_no,
    spoken_groups,
)


def test_given_a_day_when_a_number_is_made_then_it_starts_with_month_and_day_and_checks():
    number = new_ticket_no(date(2026, 12, 2), randbelow=lambda n: 4711)
    assert number.startswith("1202004711") and len(number) == LENGTH
    assert damm(number) == 0
    assert parse_ticket_no(number) == number


def test_given_every_single_digit_slip_and_neighbour_swap_then_the_check_digit_refuses_it():
    rng = random.Random(7)
    for _ in range(200):
        number = new_ticket_no(date(2026, rng.randint(1, 12), rng.randint(1, 28)),
                               randbelow=lambda n: rng.randrange(n))
        for i in range(LENGTH):
            for d in "0123456789":
                if d != number[i]:
                    assert not is_ticket_no(number[:i] + d + number[i + 1:])
        for i in range(LENGTH - 1):
            if number[i] != number[i + 1]:
                assert not is_ticket_no(number[:i] + number[i + 1] + number[i] + number[i + 2:])


def test_given_spaces_dashes_or_full_width_digits_then_the_number_is_read():
    number = new_ticket_no(date(2026, 3, 5), randbelow=lambda n: 123)
    spaced = f"{number[:4]} {number[4:7]}-{number[7:]}"
    assert parse_ticket_no(spaced) == number
    full = number.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    assert parse_ticket_no(full) == number


@pytest.mark.parametrize("text, reason", [
    ("", "11 digits"),
    ("1202", "11 digits"),
    ("12020047110000", "11 digits"),
    ("12O20047114", "digits only"),
    ("١٢٠٢٠٠٤٧١١٤", "digits only"),
    ("13020047119", "month and day"),
    ("12320047119", "month and day"),
])
def test_given_what_is_not_a_number_then_the_reason_is_said(text, reason):
    with pytest.raises(BadTicketNumber, match=reason):
        parse_ticket_no(text)


def test_given_a_number_then_it_is_read_in_groups_of_four_three_four():
    assert spoken_groups("12020047114") == ["1202", "004", "7114"]


def test_given_many_numbers_of_one_day_then_they_rarely_repeat():
    seen = {new_ticket_no(date(2026, 12, 2)) for _ in range(2000)}
    assert len(seen) >= 1990
