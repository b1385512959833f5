"""Text messages to callers (issue 13): the ticket number by SMS, through an outbox.

* :mod:`gateway.sms.texts` who may be texted (mainland mobiles) and what the texts say;
* :mod:`gateway.sms.outbox` the ``sms_outbox`` table: queued with the ticket, claimed,
  sent, retried with backoff, ``dead`` after the last attempt; its health and listing;
* :mod:`gateway.sms.senders` one interface, an HTTP webhook sender and an SMPP stub;
* :mod:`gateway.sms.worker` the sender loop (one instance sends at a time: row claims);
* :mod:`gateway.sms.plugin` wiring, ``/healthz`` ``sms`` and the supervisor's list.
"""
