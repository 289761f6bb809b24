"""Signs a webhook exactly as Twilio does, with the twilio SDK's own code."""

import httpx
from twilio.request_validator import RequestValidator


def post_signed_reply(
    oncall_url: str, public_base_url: str, auth_token: str, params: dict[str, str]
) -> httpx.Response:
    signed_url = public_base_url.rstrip("/") + "/webhook/twilio"
    signature = RequestValidator(auth_token).compute_signature(signed_url, params)
    return httpx.post(
        oncall_url + "/webhook/twilio", data=params, headers={"X-Twilio-Signature": signature}, timeout=10
    )


def whatsapp_reply(
    sender: str, body: str, message_sid: str, account_sid: str, **extra: str
) -> dict[str, str]:
    """The form fields of a real inbound WhatsApp message (docs/vendor-contracts.md §3.1)."""
    return {
        "SmsMessageSid": message_sid,
        "NumMedia": "0",
        "ProfileName": "On-call",
        "MessageType": "text",
        "SmsSid": message_sid,
        "WaId": sender.lstrip("+"),
        "SmsStatus": "received",
        "Body": body,
        "To": "whatsapp:+14155238886",
        "NumSegments": "1",
        "ReferralNumMedia": "0",
        "MessageSid": message_sid,
        "AccountSid": account_sid,
        "From": f"whatsapp:{sender}",
        "ApiVersion": "2010-04-01",
        **extra,
    }
