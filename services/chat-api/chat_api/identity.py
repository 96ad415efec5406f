"""Who a request is for: one `Principal`, resolved once per request by `routes.common.identify`.

Its `id` is what per-person state is keyed by: rate limits, token budgets, usage and stored
conversations. It never holds a secret, so it may appear in logs; it is not a metric label
(unbounded). Sources, in the order they are tried:
- a signed session cookie from OpenID Connect sign-in: kind "person", via "session";
- an API key: via "key", kind "person" for a person's own key (owner = their id) or
  "service" for an operator key from the mounted Secret directory;
- nothing, when authentication is off (`make up` on 127.0.0.1): kind "anonymous", keyed by the
  client address.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

PrincipalKind = Literal["person", "service", "anonymous"]
Via = Literal["session", "key", "none"]


@dataclass(frozen=True, slots=True)
class Principal:
    id: str
    kind: PrincipalKind
    via: Via
    email: str = ""
    name: str = ""
    key_name: str = ""

    @classmethod
    def operator_key(cls, key_name: str) -> Principal:
        """A key from the operator's Secret directory (one file per key)."""
        return cls(id=f"key:{key_name}", kind="service", via="key", key_name=key_name)

    @classmethod
    def anonymous(cls, address: str) -> Principal:
        return cls(id=f"addr:{address}", kind="anonymous", via="none")
