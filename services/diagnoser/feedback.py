"""Feedback on a diagnosis: "right", "wrong", 👍, 👎, "wrong: the cause was X". Recorded on the
incident (its conversation) and on its problem signature (memory.py), so that a repeat never
recalls a diagnosis marked wrong without saying so; acknowledged in one line; counted."""

import re

from services.contracts import streams
from services.contracts.models import Conversation, FeedbackRecord, Verdict, incident_tag, utc_now
from services.diagnoser import memory, metrics
from services.runtime.bus import Bus
from services.runtime.text import clip

_SKIN = "[\U0001f3fb-\U0001f3ff]?"  # 👍🏽: a thumb of any skin tone
_RIGHT = re.compile(rf"^\s*(?:right|correct|spot on|good diagnosis|👍{_SKIN})\s*[.!]*\s*$", re.I)
_WRONG = re.compile(
    rf"^\s*(?:wrong|incorrect|bad diagnosis|👎{_SKIN})\s*(?:[:,.!-]\s*(?P<rest>.*))?$",
    re.I | re.S,
)
_CAUSE_WAS = re.compile(r"^(?:the\s+)?(?:real\s+|actual\s+|root\s+)?cause\s+(?:was|is)\s*:?\s*", re.I)
MAX_CORRECTION_CHARS = 300


def parse(text: str) -> tuple[Verdict, str | None] | None:
    """The verdict and the correction ("wrong: the cause was X" -> X), or None: not feedback.
    Only a whole reply is feedback ("right" alone), so "create the ticket right away" is not."""
    body = text.strip()
    body = re.sub(r"^#[0-9a-fA-F]{6}\s+", "", body)  # the incident's tag in front
    if _RIGHT.match(body):
        return "right", None
    wrong = _WRONG.match(body)
    if wrong is None:
        return None
    rest = (wrong["rest"] or "").strip()
    correction = _CAUSE_WAS.sub("", rest).strip().rstrip(".") or None
    return "wrong", clip(correction, MAX_CORRECTION_CHARS) if correction else None


def with_feedback(conversation: Conversation, record: FeedbackRecord) -> Conversation | None:
    if record.message_sid and any(f.message_sid == record.message_sid for f in conversation.feedback):
        return None  # a redelivery
    return conversation.model_copy(
        update={"feedback": [*conversation.feedback, record], "updated_at": utc_now()}
    )


def acknowledgement(conversation: Conversation, record: FeedbackRecord) -> str:
    tag = incident_tag(conversation.incident_id)
    if record.verdict == "right":
        return f"👍 Noted: the diagnosis of {tag} was right. Thanks, {record.by}."
    if record.correction:
        return (
            f"📝 Noted: the diagnosis of {tag} was wrong; the cause was {record.correction}. "
            "I will say so if it comes back."
        )
    return f"📝 Noted: the diagnosis of {tag} was wrong. I will say so if it comes back."


async def record(bus: Bus, incident_id: str, feedback: FeedbackRecord) -> Conversation | None:
    """On the conversation (each reply once: the caller checks the turn), then on the signature."""
    stored = await bus.kv_update(
        streams.CONVERSATIONS,
        incident_id,
        Conversation,
        lambda current: with_feedback(current, feedback) if current is not None else None,
    )
    await memory.remember(bus, stored)
    metrics.feedback.labels(verdict=feedback.verdict).inc()
    return stored
