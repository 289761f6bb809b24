"""What the notifier keeps in KV `oncall_deliveries`: keys, records, and short leases.

| key | value |
|---|---|
| `sent.<notification>.<digits>[.partN]` | the MessageSid once that part is sent (a lease while sending) |
| `invite.<notification>.<digits>` | the MessageSid of the template sent instead (24-hour window closed) |
| `sid.<MessageSid>` | `SentMessage`: which notification, person and incident a message of ours belongs to |
| `status.<MessageSid>` | `DeliveryStatus`: the furthest status Twilio reported for it |
| `inbound.<MessageSid>` | `InboundMessage`: a reply already published |

A lease is how two workers racing on the same key do not both act: the first creates the key
holding `pending:<time>`, acts, then writes the result. A later worker finding a fresh lease
backs off; one finding a lease older than the action can take took its holder to have died,
and takes over.

A send lease (`acquire` and `kept`) is stricter, because a message once sent cannot be taken back:
its holder renews it while it sends, however long Twilio takes, and leaves it in place when the
outcome is unknown (the process died, or the answer was lost). Whoever finds it then waits until
nobody has renewed it for a whole lease, and is told (`Lease.uncertain`) that the message may
have gone out: it asks Twilio before sending (services/notifier/delivery.py).
"""

import asyncio
import contextlib
import hashlib
import logging
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Final, Literal

import nats.js.errors
from pydantic import BaseModel, ValidationError

from services.contracts import streams
from services.runtime.bus import Bus
from services.runtime.heartbeat import beating

log = logging.getLogger("oncall.notifier")

_PENDING: Final = b"pending:"
_UNSAFE_KEY_CHARS = re.compile(r"[^-/_=a-zA-Z0-9]")

LeaseOutcome = Literal["taken", "done", "busy"]


# --- records ---------------------------------------------------------------------------------


class SentMessage(BaseModel):
    """A message we sent: a reply to it finds its incident, and a late 63016 its invitation."""

    notification: str
    recipient: str
    incident_id: str | None = None
    invite: str = ""


class DeliveryStatus(BaseModel):
    """The furthest status Twilio reported for one of our messages."""

    status: str
    error_code: str | None = None
    updated_at: float


class InboundMessage(BaseModel):
    """A reply from an on-call person: kept so that the answer can say who asked what."""

    sender: str
    profile_name: str | None = None
    body: str


# Twilio's callbacks can arrive out of order: a late `sent` must not overwrite `read`.
# `failed` and `undelivered` are final.
_STATUS_RANK: Final = {
    "accepted": 0,
    "scheduled": 0,
    "queued": 0,
    "sending": 1,
    "sent": 2,
    "delivered": 3,
    "read": 4,
    "failed": 5,
    "undelivered": 5,
    "canceled": 5,
}


def advance_status(current: DeliveryStatus | None, reported: DeliveryStatus) -> DeliveryStatus | None:
    """The status to store, or None when `reported` is no news (a repeat or an out-of-order one)."""
    if current is None:
        return reported
    if _STATUS_RANK.get(reported.status, 0) > _STATUS_RANK.get(current.status, 0):
        return reported
    return None


# --- keys ------------------------------------------------------------------------------------


def digits_of(recipient: str) -> str:
    return re.sub(r"\D", "", recipient) or recipient


def sent_key(notification_key: str, recipient: str, part: int = 1, parts: int = 1) -> str:
    key = f"sent.{notification_key}.{digits_of(recipient)}"
    return kv_key(key if parts == 1 else f"{key}.part{part}")


def invite_key(notification_key: str, recipient: str) -> str:
    return kv_key(f"invite.{notification_key}.{digits_of(recipient)}")


def sid_key(message_sid: str) -> str:
    return kv_key(f"sid.{message_sid}")


def status_key(message_sid: str) -> str:
    return kv_key(f"status.{message_sid}")


def inbound_key(message_sid: str) -> str:
    return kv_key(f"inbound.{message_sid}")


def kv_key(raw: str) -> str:
    """A valid KV key for `raw`: KV keys allow only `[-/_=.a-zA-Z0-9]` and no empty tokens.
    When characters had to be replaced, a hash of the original keeps distinct inputs distinct."""
    cleaned = ".".join(t for t in (_UNSAFE_KEY_CHARS.sub("_", t) for t in raw.split(".")) if t)
    if cleaned == raw:
        return raw
    return f"{cleaned}.{hashlib.sha256(raw.encode()).hexdigest()[:12]}"


# --- leases ----------------------------------------------------------------------------------


def pending_value(payload: bytes, now: float) -> bytes:
    """A lease taken at `now`; `payload` rides along, readable while the lease is held."""
    return _PENDING + repr(now).encode() + b"\n" + payload


def parse_value(raw: bytes) -> tuple[float | None, bytes]:
    """(when the lease was taken, or None once done; the payload)."""
    if not raw.startswith(_PENDING):
        return None, raw
    head, _, payload = raw.partition(b"\n")
    try:
        return float(head.removeprefix(_PENDING)), payload
    except ValueError:
        return 0.0, payload  # unreadable: as good as expired


def lease_state(raw: bytes, now: float, lease_seconds: float) -> Literal["done", "busy", "stale"]:
    taken_at, _ = parse_value(raw)
    if taken_at is None:
        return "done"
    return "busy" if now - taken_at < lease_seconds else "stale"


async def take_lease(bus: Bus, key: str, lease_seconds: float, payload: bytes = b"") -> LeaseOutcome:
    """ "taken": the caller acts, then calls `finish` or `release`; "done": it was already done;
    "busy": another worker holds a fresh lease (or the key just changed): try again later."""
    now = time.time()
    lease = pending_value(payload, now)
    if await bus.claim(streams.DELIVERIES, key, lease):
        return "taken"
    kv = await bus.kv(streams.DELIVERIES)
    try:
        entry = await kv.get(key)
    except nats.js.errors.KeyNotFoundError:  # released between our two calls
        return "busy"
    state = lease_state(entry.value or b"", now, lease_seconds)
    if state != "stale":
        return state
    try:  # the holder died mid-action: take over
        await kv.update(key, lease, last=entry.revision)
    except nats.js.errors.KeyWrongLastSequenceError:
        return "busy"
    log.warning("took over the expired lease %s", key)
    return "taken"


@dataclass
class Lease:
    """A send lease held by this worker. `since`: when the first holder took the key (a message
    sent by any holder was sent after it); `uncertain`: an earlier holder may have sent."""

    key: str
    revision: int
    since: float
    uncertain: bool


async def acquire(bus: Bus, key: str, lease_seconds: float, poll_seconds: float = 0.5) -> Lease | None:
    """The send lease on `key`, or None when the send is already done. While another worker
    holds it (renewing it), waits: the caller's consumer reports progress meanwhile, and the
    message then is either done or abandoned, never sent twice."""
    kv = await bus.kv(streams.DELIVERIES)
    while True:
        now = time.time()
        try:
            revision = await kv.create(key, pending_value(_since(now), now))
        except nats.js.errors.KeyWrongLastSequenceError:
            pass
        else:
            return Lease(key, revision, now, uncertain=False)
        try:
            entry = await kv.get(key)
        except nats.js.errors.KeyNotFoundError:
            continue  # released between our two calls
        raw = entry.value or b""
        taken_at, payload = parse_value(raw)
        if taken_at is None:
            return None
        age = now - taken_at
        if age < lease_seconds:
            await asyncio.sleep(min(poll_seconds, lease_seconds - age))
            continue
        since = _read_since(payload, taken_at)
        try:
            revision = await kv.update(key, pending_value(_since(since), now), last=entry.revision)
        except nats.js.errors.KeyWrongLastSequenceError:
            continue
        log.warning("took over the abandoned send lease %s: asking the vendor before sending", key)
        return Lease(key, revision, since, uncertain=True)


@contextlib.asynccontextmanager
async def kept(bus: Bus, lease: Lease, lease_seconds: float) -> AsyncIterator[None]:
    """Renews `lease` every quarter of `lease_seconds` while the block runs (a slow vendor does
    not let another worker in); the block ends with `finish`, `release`, or neither when the
    outcome is unknown (the lease is then abandoned, for a later worker to reconcile)."""
    kv = await bus.kv(streams.DELIVERIES)

    async def renew() -> bool:
        try:
            lease.revision = await kv.update(
                lease.key, pending_value(_since(lease.since), time.time()), last=lease.revision
            )
        except nats.js.errors.KeyWrongLastSequenceError:
            return False  # finished or released meanwhile
        except Exception:  # NATS reconnecting: the next beat may pass
            log.warning("could not renew send lease %s", lease.key, exc_info=True)
        return True

    async with beating(renew, lease_seconds / 4):
        yield


def _since(at: float) -> bytes:
    return f"since={at!r}".encode()


def _read_since(payload: bytes, default: float) -> float:
    text = payload.decode(errors="replace")
    if text.startswith("since="):
        try:
            return float(text.removeprefix("since="))
        except ValueError:
            pass
    return default


async def finish(bus: Bus, key: str, result: bytes) -> None:
    await (await bus.kv(streams.DELIVERIES)).put(key, result)


async def release(bus: Bus, key: str) -> None:
    """Give the lease back so that a retry can act at once."""
    try:
        await (await bus.kv(streams.DELIVERIES)).delete(key)
    except Exception:  # the lease expires on its own; the original error is what matters
        log.warning("could not release lease %s", key, exc_info=True)


# --- reading records ---------------------------------------------------------------------------


async def sent_message(bus: Bus, message_sid: str) -> SentMessage | None:
    """The message of ours with this SID (None when unknown, expired, or unreadable)."""
    try:
        found, _ = await bus.kv_get(streams.DELIVERIES, sid_key(message_sid), SentMessage)
    except ValidationError:
        log.warning("unreadable record of message %s", message_sid)
        return None
    return found


async def incident_of_message(bus: Bus, message_sid: str) -> str | None:
    """The incident a message we sent belongs to (None when unknown or expired)."""
    found = await sent_message(bus, message_sid)
    return found.incident_id if found else None


async def inbound_accepted(bus: Bus, message_sid: str) -> bool:
    """The reply with this SID was published (a lease left by an older version does not count:
    publishing again is harmless, JetStream drops the repeat)."""
    try:
        entry = await (await bus.kv(streams.DELIVERIES)).get(inbound_key(message_sid))
    except nats.js.errors.KeyNotFoundError:
        return False
    taken_at, _ = parse_value(entry.value or b"")
    return taken_at is None


async def inbound_message(bus: Bus, message_sid: str) -> InboundMessage | None:
    """The reply with this SID as the webhook recorded it, published or being published."""
    try:
        entry = await (await bus.kv(streams.DELIVERIES)).get(inbound_key(message_sid))
    except nats.js.errors.KeyNotFoundError:
        return None
    _, payload = parse_value(entry.value or b"")
    try:
        return InboundMessage.model_validate_json(payload)
    except ValidationError:
        return None
