"""The login brake: refuses logins for a while after repeated failures, per user and per address."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable

from gateway.auth.errors import TooManyAttempts


@dataclass
class _Record:
    failures: list[float] = field(default_factory=list)
    blocked_until: float = 0.0
    strikes: int = 0  # how often this key was blocked (the address penalty doubles each time)
    last_block: float = 0.0


@dataclass(frozen=True)
class BrakePolicy:
    """``limit`` failures within ``window`` s block the key for ``penalty`` s, doubled for each
    block that follows within ``forgive`` s, up to ``max_penalty`` s."""

    limit: int
    window: float
    penalty: float
    max_penalty: float
    forgive: float = 3600.0

    def penalty_for(self, strikes: int) -> float:
        return min(self.max_penalty, self.penalty * 2 ** max(0, strikes - 1))


USER_POLICY = BrakePolicy(limit=5, window=300.0, penalty=60.0, max_penalty=60.0)
ADDRESS_POLICY = BrakePolicy(limit=50, window=600.0, penalty=60.0, max_penalty=3600.0)
SCOPES = {"user": ("该用户", "this user"), "address": ("该网络地址", "this network address")}


class LoginBrake:
    """Refuses logins (429) for a while after repeated failures, per user and per address.

    * Per user: 5 failures within 5 minutes block *that username* for 60 s, from any
      address; other users are not affected.
    * Per client address: 50 failures within 10 minutes (a password spray) block the
      address for 60 s, doubling with each new block within an hour, up to an hour.
      The limit is high because many people share an address (a call centre behind NAT,
      a reverse proxy: set ``GATEWAY_TRUSTED_PROXIES`` so the client's own address is used).

    A refusal says which brake it is and for how long (``details``: scope, retry_after).
    In memory, per process; at most ``size`` keys are kept (least recently failed go first).
    """

    def __init__(self, *, user: BrakePolicy = USER_POLICY, address: BrakePolicy = ADDRESS_POLICY,
                 size: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.policies = {"user": user, "address": address}
        self.size = size
        self._clock = clock
        self._records: OrderedDict[tuple[str, str], _Record] = OrderedDict()

    @staticmethod
    def _keys(username: str, address: str | None) -> list[tuple[str, str]]:
        return [("user", username)] + ([("address", address)] if address else [])

    def check(self, username: str, address: str | None = None) -> None:
        now = self._clock()
        for key in self._keys(username, address):
            record = self._records.get(key)
            if record is not None and record.blocked_until > now:
                wait = int(record.blocked_until - now) + 1
                zh, en = SCOPES[key[0]]
                raise TooManyAttempts(f"{zh}登录失败次数过多，请 {wait} 秒后再试 / too many failed logins for {en}; "
                                      f"try again in {wait} s", details={"scope": key[0], "retry_after": wait})

    def fail(self, username: str, address: str | None = None) -> None:
        now = self._clock()
        for key in self._keys(username, address):
            policy = self.policies[key[0]]
            record = self._records.pop(key, None) or _Record()
            record.failures = [t for t in record.failures if now - t < policy.window][-(policy.limit - 1):] + [now]
            if len(record.failures) >= policy.limit and record.blocked_until <= now:
                record.strikes = record.strikes + 1 if now - record.last_block < policy.forgive else 1
                record.last_block = now
                record.blocked_until = now + policy.penalty_for(record.strikes)
                record.failures = []
            self._records[key] = record  # most recent last
        while len(self._records) > self.size:
            self._records.popitem(last=False)

    def succeed(self, username: str) -> None:
        """A good password clears that user's count (never the address's: one good account
        must not reset a spray)."""
        self._records.pop(("user", username), None)

    def __len__(self) -> int:
        return len(self._records)
