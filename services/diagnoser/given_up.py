"""A human reply the diagnoser gave up on (dead-lettered): the person who wrote it is told why, so
that no request ends in silence."""

from services.contracts import subjects
from services.contracts.models import HumanReplied, NotifyText
from services.runtime.bus import Bus
from services.runtime.text import clip

MAX_QUOTE_CHARS = 80


def given_up_text(reply: HumanReplied, reason: str) -> str:
    return (
        f"⚠️ I could not act on your message “{clip(reply.body.strip(), MAX_QUOTE_CHARS)}”: {reason}\n"
        "Please send it again in a few minutes."
    )


async def report_given_up(reply: HumanReplied, reason: str, bus: Bus) -> None:
    note = NotifyText(
        notification_id=f"answer-failed-{reply.message_sid}",
        incident_id=reply.incident_id,
        text=given_up_text(reply, reason),
        in_reply_to=reply.message_sid,
    )
    await bus.publish_event(subjects.NOTIFY_TEXT, note, msg_id=note.notification_id)
