"""The console channel of local mode: messages are printed instead of sent to WhatsApp.

Each message is also mirrored on the core NATS subject `oncall.console.out`, so that
`oncall reply` in another terminal can show the agent's answer.
"""

import logging
import secrets
import sys
from datetime import UTC, datetime
from typing import Final

from faststream.nats import NatsBroker

from services.contracts import subjects
from services.notifier.delivery import CONSOLE_RECIPIENT, Thread

log = logging.getLogger("oncall.notifier.console")

FRAME_WIDTH: Final = 64
SID_PREFIX: Final = "CONSOLE"


class ConsoleChannel:
    name = "console"

    def __init__(self, broker: NatsBroker):
        self._broker = broker

    async def send(self, to: str, body: str, thread: Thread | None = None) -> str:
        """Print `body` once for `to`: one number, or everyone it is for, comma-separated. The
        mirror says which reply it answers and whether more answers follow (`oncall reply`
        returns at the last)."""
        # Unique like a Twilio MessageSid, and plainly not one.
        sid = SID_PREFIX + secrets.token_hex(14)
        # One write per message, so messages printed concurrently do not interleave.
        sys.stdout.write(frame(to, body, datetime.now(UTC)))
        sys.stdout.flush()
        try:
            mirror = {
                "to": to,
                "body": body,
                "sid": sid,
                "in_reply_to": thread.in_reply_to if thread else None,
                "follow_up_expected": thread.follow_up_expected if thread else False,
            }
            await self._broker.publish(mirror, subjects.CONSOLE_OUT)
        except Exception:  # the message is printed; only the mirror for `oncall reply` is lost
            log.warning("could not mirror console message %s on %s", sid, subjects.CONSOLE_OUT, exc_info=True)
        return sid

    async def send_template(self, to: str, invitation: str) -> str:
        # The console has no 24-hour window; this only completes the Channel.
        return await self.send(to, f"[template] {invitation}")

    async def find_sent(self, to: str, body: str, since: float) -> list[str]:
        # What a process printed before it died is not kept: print it again.
        return []


def frame(to: str, body: str, at: datetime) -> str:
    """The message as a person reads it in a terminal: a header naming the recipient, the
    text, and a footer with the time."""
    header = "── WhatsApp " if to == CONSOLE_RECIPIENT else f"── WhatsApp to {to} "
    footer = f"── {at:%H:%M:%S} UTC "
    return f"\n{header.ljust(FRAME_WIDTH, '─')}\n{body}\n{footer.ljust(FRAME_WIDTH, '─')}\n\n"
