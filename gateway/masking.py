"""Masking of personal data (phone numbers) for logs and limited views."""

from __future__ import annotations

import re

_NUMBER_RUN = re.compile(r"\+?\d{6,}")


def mask_number(number: str | None) -> str:
    """``13800138000`` -> ``138****8000``; numbers of 7 digits or fewer keep their last 2."""
    if not number:
        return ""
    text = str(number)
    if len(text) > 7:
        return text[:3] + "*" * (len(text) - 7) + text[-4:]
    return "*" * max(0, len(text) - 2) + text[-2:]


def mask_text(text: str) -> str:
    """Mask personal data inside free text (log lines, errors): identity, phone and bank card
    numbers and plates, spoken in any script (:mod:`gateway.pii`), then any run of six or
    more digits left."""
    from gateway.pii import mask_personal

    return _NUMBER_RUN.sub(lambda m: mask_number(m.group(0)), mask_personal(str(text)))
