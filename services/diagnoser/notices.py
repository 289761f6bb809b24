"""The "still investigating" notice: a slow model (a CPU-only local one takes minutes) must not
leave the person paged waiting blind, so after ONCALL_SLOW_NOTICE_SECONDS they get the rules'
first look from the same evidence, and the model's diagnosis follows when it is ready."""

from services.contracts.models import Diagnosis, NotifyText, incident_tag
from services.runtime.text import clip, format_duration

MAX_FIRST_LOOK_CHARS = 400


def slow_notice_text(
    title: str, incident_id: str, model: str, host: str, waited: float, first_look: Diagnosis
) -> str:
    lines = [
        f"⏳ *Still investigating* {incident_tag(incident_id)}",
        f"*{title}*",
        f"The model ({model} at {host}) has been working for {format_duration(waited)}; "
        "its diagnosis follows when it is ready.",
        "",
        "*First look (rule-based):*",
        clip(first_look.root_cause.strip(), MAX_FIRST_LOOK_CHARS),
    ]
    if first_look.affected_file:
        where = first_look.affected_file + (f":{first_look.line}" if first_look.line else "")
        lines.append(f"*File:* `{where}`")
    return "\n".join(lines)


def slow_notice(
    title: str,
    incident_id: str,
    revision: int,
    model: str,
    host: str,
    waited: float,
    first_look: Diagnosis,
) -> NotifyText:
    """To every on-call number, once per incident and diagnosis revision (its id is the key)."""
    return NotifyText(
        notification_id=slow_notice_id(incident_id, revision),
        incident_id=incident_id,
        text=slow_notice_text(title, incident_id, model, host, waited, first_look),
    )


def slow_notice_id(incident_id: str, revision: int) -> str:
    return f"slow-{incident_id}-{revision}"
