"""Who actually sends a text: one interface, pluggable senders.

* :class:`WebhookSender` POSTs the message as JSON to a configured URL (the operator's SMS
  gateway or an integration service): ``{"id", "to", "body", "kind", "ticket_id"}``, with
  ``X-Gateway-Signature: sha256=<hex HMAC-SHA256 of the raw body>`` when a secret is set.
  A 2xx answer is sent (a JSON ``id``/``message_id`` in it is kept as the provider's
  reference); any other answer, a timeout or a refused connection is a failed attempt,
  retried with backoff by the worker.
* :class:`SmppSender` is the interface for a carrier's SMPP link (bind, submit_sm, unbind).
  No SMPP client ships with the gateway: :class:`SmppSender` is abstract and the
  :class:`SmppNotImplemented` stub refuses at start, so a misconfiguration never looks like
  success. An operator implements ``submit_sm`` (e.g. with an SMPP library of their choice).
"""

from __future__ import annotations

import abc
import hashlib
import hmac
import json
from dataclasses import dataclass

import aiohttp

from gateway.errors import GatewayError


class SmsSenderError(GatewayError):
    """A sender cannot be set up (configuration)."""

    error_id = "sms-sender"


@dataclass(frozen=True)
class SmsMessage:
    id: int
    to: str
    body: str
    kind: str
    ticket_id: int | None = None


@dataclass(frozen=True)
class SendResult:
    ok: bool
    provider_ref: str | None = None
    error: str = ""  # why not (no personal data: never the number or the body)
    final: bool = False  # retrying cannot help (the worker marks it dead at once)


class SmsSender(abc.ABC):
    """Sends one text; never raises for a failed send (a :class:`SendResult` says what happened)."""

    name = "sender"

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Open connections (called once before the first send)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    @abc.abstractmethod
    async def send(self, message: SmsMessage) -> SendResult: ...


class WebhookSender(SmsSender):
    name = "webhook"

    def __init__(self, url: str, *, secret: str = "", timeout: float = 10.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise SmsSenderError(f"SMS webhook URL must be http:// or https://, not {url[:40]!r}")
        self.url = url
        self.secret = secret
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def sign(self, raw: bytes) -> str:
        return "sha256=" + hmac.new(self.secret.encode("utf-8"), raw, hashlib.sha256).hexdigest()

    async def send(self, message: SmsMessage) -> SendResult:
        await self.start()
        raw = json.dumps({"id": message.id, "to": message.to, "body": message.body, "kind": message.kind,
                          "ticket_id": message.ticket_id}, ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json; charset=utf-8", "Idempotency-Key": f"sms-{message.id}"}
        if self.secret:
            headers["X-Gateway-Signature"] = self.sign(raw)
        try:
            async with self._session.post(self.url, data=raw, headers=headers) as response:
                text = await response.text(errors="replace")
                if not 200 <= response.status < 300:
                    return SendResult(False, error=f"webhook answered HTTP {response.status}")
                ref = None
                try:
                    answer = json.loads(text) if text else {}
                    if isinstance(answer, dict):
                        ref = answer.get("message_id") or answer.get("id")
                except ValueError:
                    pass
                return SendResult(True, provider_ref=None if ref is None else str(ref)[:128])
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return SendResult(False, error=f"webhook unreachable ({type(exc).__name__})")


class SmppSender(SmsSender):
    """A carrier's SMPP link (SMPP 3.4): implement :meth:`bind`, :meth:`submit_sm` and :meth:`unbind`.

    :meth:`send` turns the message into one ``submit_sm`` (UCS-2 for Chinese, ``data_coding=8``;
    a body over 70 characters needs a concatenated message, the implementation's choice); a
    ``command_status`` other than ESME_ROK is a failed attempt, final for a bad destination.
    """

    name = "smpp"

    async def start(self) -> None:
        await self.bind()

    async def close(self) -> None:
        await self.unbind()

    @abc.abstractmethod
    async def bind(self) -> None: ...

    @abc.abstractmethod
    async def unbind(self) -> None: ...

    @abc.abstractmethod
    async def submit_sm(self, destination: str, body: str) -> SendResult: ...

    async def send(self, message: SmsMessage) -> SendResult:
        return await self.submit_sm(message.to, message.body)


class SmppNotImplemented(SmppSender):
    """The documented stub: refuses to start, never pretends to send."""

    def __init__(self, *_args, **_kwargs) -> None:
        raise SmsSenderError("SMPP sending is an interface only in this gateway: subclass "
                             "gateway.sms.senders.SmppSender and implement bind/submit_sm/unbind "
                             "(or use GATEWAY_SMS_WEBHOOK_URL)")

    async def bind(self) -> None:  # pragma: no cover - never constructed
        raise NotImplementedError

    async def unbind(self) -> None:  # pragma: no cover
        raise NotImplementedError

    async def submit_sm(self, destination: str, body: str) -> SendResult:  # pragma: no cover
        raise NotImplementedError


def sender_from_settings(settings) -> SmsSender | None:
    """The configured sender, or None (texts stay pending in the outbox)."""
    if settings.sms_webhook_url:
        return WebhookSender(settings.sms_webhook_url, secret=settings.sms_webhook_secret,
                             timeout=settings.sms_webhook_timeout)
    return None
