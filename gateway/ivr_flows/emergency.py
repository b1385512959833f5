"""``emergency_transfers`` of ``hotlines.yaml``: where the desk's transfer action sends a caller.

One entry per emergency service (110 police, 119 fire, 120 ambulance, 122 traffic police),
each with a ``name`` shown on the desk's button and exactly one destination: ``queue`` (a
queue of this file) or ``dial`` (an Asterisk dial string: one channel, ``TECH/resource``).
The dial string goes into the generated dialplan, so only a narrow set of characters is
accepted (no ``,``, ``$``, ``(``, ``;``, spaces: nothing that could add an argument, a
variable or a second application)::

    emergency_transfers:
      "110": {name: 公安110指挥中心, dial: PJSIP/110@pstn}
      "120": {name: 120急救中心, queue: q-emergency}
"""

from __future__ import annotations

import re
from typing import Any

from gateway.ivr_flows.model import EMERGENCY_NUMBERS, EmergencyTransfer

DIAL = re.compile(r"^(?:PJSIP|SIP|IAX2|DAHDI|Local)/[A-Za-z0-9_.@+#*/-]{1,80}$")
SERVICE_NAMES = {"110": "公安 police", "119": "消防 fire", "120": "急救 ambulance", "122": "交警 traffic police"}


def emergency_transfers(raw: Any, path: tuple, r, queues: dict) -> dict:
    """Service -> :class:`EmergencyTransfer`; problems go to ``r`` (the validator's reader)."""
    if raw is None:
        return {}
    if isinstance(raw, dict):
        raw = {str(k): v for k, v in raw.items()}  # 110: unquoted is the number 110
    m = r.mapping(raw, path, optional=tuple(sorted(EMERGENCY_NUMBERS)))
    if m is None:
        return {}
    out = {}
    for key, item in m.items():
        service = str(key)
        if service not in EMERGENCY_NUMBERS:
            continue  # reported by mapping() as an unknown key
        spath = path + (key,)
        entry = r.mapping(item, spath, required=("name",), optional=("queue", "dial"))
        if entry is None:
            continue
        name = r.text(entry.get("name"), spath + ("name",), one_line=True) if "name" in entry else None
        has_queue, has_dial = "queue" in entry, "dial" in entry
        if has_queue == has_dial:
            r.src.problem(spath, "give exactly one destination: queue (a queue of this file) or dial "
                                 "(a dial string such as PJSIP/120@pstn) / 请只填写一个目的地：queue 或 dial")
            continue
        queue = r.ref(entry["queue"], spath + ("queue",), queues, "queue") if has_queue else None
        dial = (r.text(entry["dial"], spath + ("dial",), pattern=DIAL,
                       what="dial string (TECH/resource, e.g. PJSIP/120@pstn or Local/120@site-emergency)")
                if has_dial else None)
        if name and (queue or dial):
            out[service] = EmergencyTransfer(service, name, queue, dial)
    return dict(sorted(out.items()))
