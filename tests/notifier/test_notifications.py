"""Several on-call people: everyone gets every message about an incident, each carrying its tag,
and an answer to one person's reply shows the others who asked what."""

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fakes import FakeTwilio
from notifier.twilio_posts import SENDER, Webhook, twilio_form

from services.contracts.models import (
    Diagnosis,
    IncidentDiagnosed,
    IncidentResolved,
    NotifyText,
    TicketCreated,
    TicketFailed,
)
from services.notifier.notifications import (
    Notifier,
    diagnosis_notification,
    resolved_notification,
    text_notification,
    ticket_created_notification,
    ticket_failed_notification,
)
from services.notifier.records import InboundMessage
from services.notifier.settings import NotifierSettings
from services.notifier.whatsapp import WhatsAppClient
from services.runtime.bus import Bus

MakeSettings = Callable[..., NotifierSettings]
INCIDENT = "a1b2c3"
ASHA = InboundMessage(sender="+15551230001", profile_name="Asha", body="create jira task and assign to Ravi")


def notifier(bus: Bus, settings: NotifierSettings) -> Notifier:
    return Notifier(
        bus, WhatsAppClient.from_settings(settings), settings.user_whatsapp_numbers, console_mode=False
    )


@pytest.mark.parametrize(
    "note",
    [
        diagnosis_notification(
            IncidentDiagnosed(
                incident_id=INCIDENT, title="HighErrorRate", diagnosis=Diagnosis(root_cause="x")
            )
        ),
        resolved_notification(IncidentResolved(incident_id=INCIDENT, title="HighErrorRate")),
        ticket_created_notification(
            TicketCreated(request_id="r", incident_id=INCIDENT, key="OPS-1", url="https://jira/browse/OPS-1")
        ),
        ticket_failed_notification(TicketFailed(request_id="r", incident_id=INCIDENT, reason="Jira is down")),
        # A silence created or removed, as the Alertmanager side announces it.
        text_notification(
            NotifyText(
                notification_id="silence-r",
                incident_id=INCIDENT,
                text="🔕 Silenced for 2h (service=checkout).",
            )
        ),
    ],
    ids=["diagnosis", "resolved", "ticket", "ticket-failed", "silence"],
)
def test_every_message_about_an_incident_carries_its_tag_and_goes_to_everyone(note: Any) -> None:
    assert f"#{INCIDENT}" in note.text
    assert note.requested_recipients is None
    assert note.invitation.startswith(f"#{INCIDENT} ")


def test_an_answer_is_headed_by_who_asked_what() -> None:
    answer = NotifyText(
        notification_id="answer-SM1", incident_id=INCIDENT, text="Creating the ticket for Ravi."
    )

    note = text_notification(answer, ASHA)

    assert note.text.splitlines()[0] == "↩️ *Asha (+1555…0001):* “create jira task and assign to Ravi”"
    assert note.text.endswith(f"Creating the ticket for Ravi.\n\n#{INCIDENT}")
    assert note.headline == "Creating the ticket for Ravi."


def test_an_answer_without_a_known_asker_is_the_answer_alone() -> None:
    answer = NotifyText(
        notification_id="answer-SM1", incident_id=None, text="I have no open incident to act on."
    )

    assert text_notification(answer).text == "I have no open incident to act on."


async def test_one_persons_reply_is_answered_to_all_with_who_asked(
    bus: Bus, twilio: FakeTwilio, make_settings: MakeSettings
) -> None:
    settings = make_settings()
    webhook = Webhook(settings, bus)
    reply = twilio_form("create jira task and assign to Ravi", sender=SENDER, ProfileName="Asha")
    assert (await webhook.post(reply)).status_code == 200
    # What the diagnoser answers: a NotifyText for everyone (recipients None).
    answer = NotifyText(
        notification_id=f"answer-{reply['MessageSid']}",
        incident_id=INCIDENT,
        text="Creating the ticket for Ravi.",
        in_reply_to=reply["MessageSid"],
    )

    await notifier(bus, settings).on_text(answer)

    assert sorted(m["To"] for m in twilio.messages) == sorted(
        f"whatsapp:{n}" for n in settings.user_whatsapp_numbers
    )
    for message in twilio.messages:
        assert message["Body"].startswith("↩️ *Asha (+1555…0001):* “create jira task and assign to Ravi”")
        assert f"#{INCIDENT}" in message["Body"]


async def test_an_answer_for_one_person_reaches_only_them(
    bus: Bus, twilio: FakeTwilio, make_settings: MakeSettings
) -> None:
    settings = make_settings()
    only = settings.user_whatsapp_numbers[1]
    text = NotifyText(
        notification_id=f"t-{uuid.uuid4().hex}", incident_id=INCIDENT, text="just you", recipients=[only]
    )

    await notifier(bus, settings).on_text(text)

    assert [m["To"] for m in twilio.messages] == [f"whatsapp:{only}"]
