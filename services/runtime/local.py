"""Local mode for people: `oncall demo` (a whole incident from nothing) and `oncall reply`
(answer as the on-call person through the console channel)."""

import asyncio
import contextlib
import json
import secrets
import shutil
import socket
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import nats
from nats.aio.msg import Msg
from pydantic import SecretStr

from services.contracts import subjects
from services.contracts.models import HumanReplied, IncidentDiagnosed, incident_tag
from services.runtime import demo
from services.runtime.broker import check_reachable, nats_servers
from services.runtime.host import Host, read_local_state
from services.runtime.service import SERVICE_NAMES
from services.runtime.settings import Settings


def reply_example() -> str:
    """`oncall reply ...` as the person can type it: the bare name when on PATH, else its path."""
    command = "oncall" if shutil.which("oncall") else str(Path(sys.argv[0]).resolve())
    return f'{command} reply "create jira task and assign to ravi"'


def say(text: str) -> None:
    print(text, flush=True)


def free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def demo_settings(settings: Settings) -> Settings:
    """The demo serves its own logs and Prometheus endpoints and code directory, and talks to
    itself with a fresh ingest token; Twilio/OpenAI/Jira settings, if any, are kept."""
    port = settings.http_port or free_port(settings.http_host)
    base = f"http://{settings.http_host}:{port}{demo.DEMO_PREFIX}"
    code_dir = demo.install_demo_code(settings.data_dir / "demo" / "code")
    return settings.model_copy(
        update={
            "http_port": port,
            "lb_url": base,
            "prom_url": base,
            "code_dir": code_dir,
            "github_owner": None,
            "github_repo": None,
            "ingest_token": settings.ingest_token or SecretStr(secrets.token_urlsafe(24)),
        }
    )


async def run_demo(settings: Settings, once: bool) -> int:
    settings = demo_settings(settings)
    started = time.monotonic()
    diagnosed = asyncio.Event()
    background: list[asyncio.Task[None]] = []  # keeps the finishing task referenced
    mode = "model " + settings.openai_model if settings.llm_configured else "rule-based (no OPENAI_API_KEY)"
    channel = "WhatsApp via Twilio" if settings.twilio_configured else "console (no Twilio settings)"
    say(f"▶ oncall demo: all five services, embedded NATS, diagnosis: {mode}, channel: {channel}")

    async def on_ready(host: Host) -> None:
        say(f"  services up at {host.http_url} (NATS {host.nats_url}) in {time.monotonic() - started:.2f}s")
        watcher = await nats.connect(nats_servers(host.nats_url), name="oncall-demo-progress")

        async def on_tool_request(msg: Msg) -> None:
            say(f"  … evidence: {msg.subject.rsplit('.', 1)[-1]}")

        async def on_diagnosed(msg: Msg) -> None:
            event = IncidentDiagnosed.model_validate_json(msg.data)
            d = event.diagnosis
            say(
                f"✔ diagnosis ({d.method}) after {time.monotonic() - started:.2f}s: "
                f"{d.affected_file}:{d.line} [{d.priority}]"
            )
            diagnosed.set()

        await watcher.subscribe(f"{subjects.TOOLS_PREFIX}.>", cb=on_tool_request)
        await watcher.subscribe(subjects.INCIDENTS_DIAGNOSED, cb=on_diagnosed)
        hook = demo.demo_alert_webhook(datetime.now(UTC))
        token = settings.ingest_token.get_secret_value() if settings.ingest_token else ""
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.post(
                f"{host.http_url}/alerts", json=hook, headers={"Authorization": f"Bearer {token}"}
            )
        body = response.json()
        incident = (body.get("incident_ids") or ["?"])[0]
        say(f"✔ alert accepted: HTTP {response.status_code}, incident {incident_tag(incident)}")
        background.append(asyncio.create_task(_finish(host, watcher, diagnosed, once)))

    host = Host(settings, SERVICE_NAMES, extra_routes=demo.demo_routes(), on_ready=on_ready)
    await host.run()
    return 0 if diagnosed.is_set() else 1


async def _finish(host: Host, watcher: Any, diagnosed: asyncio.Event, once: bool) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(diagnosed.wait(), timeout=60)
    await asyncio.sleep(0.5)  # let the notifier print the message
    await watcher.close()
    if not diagnosed.is_set():
        say("✘ no diagnosis within 60 s; see the log above")
        host.stop()
        return
    if once:
        host.stop()
        return
    say(f"\nAnswer as the on-call person, in another terminal:\n  {reply_example()}\nCtrl-C stops the demo.")


async def send_reply(settings: Settings, text: str, incident: str | None, wait_seconds: float) -> int:
    """Publish the reply as the console channel's on-call person and print the agent's answers."""
    url = settings.nats_url
    if url is None:
        state = read_local_state(settings.data_dir)
        if state is None:
            say(
                "No local oncall is running here (start `oncall up` or `oncall demo`), and NATS_URL is unset."
            )
            return 2
        url = state["nats_url"]
    await check_reachable(url)
    nc = await nats.connect(
        nats_servers(url), name="oncall-reply", connect_timeout=3, max_reconnect_attempts=1
    )
    answers: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def on_out(msg: Msg) -> None:
        await answers.put(json.loads(msg.data))

    await nc.subscribe(subjects.CONSOLE_OUT, cb=on_out)
    sender = settings.user_whatsapp_numbers[0] if settings.user_whatsapp_numbers else "console"
    reply = HumanReplied(
        message_sid=f"CONSOLE{uuid.uuid4().hex[:27]}",
        sender=sender,
        body=text,
        channel="console",
        incident_id=incident,
    )
    js = nc.jetstream()
    await js.publish(
        subjects.HUMAN_REPLIED, reply.to_bytes(), headers={"Nats-Msg-Id": f"reply-{reply.message_sid}"}
    )
    say(f"→ sent as {sender}: {text}")
    got = 0
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        # After the first answer, wait a little for follow-ups (the ticket confirmation).
        timeout = deadline - time.monotonic() if got == 0 else min(5.0, deadline - time.monotonic())
        try:
            answer = await asyncio.wait_for(answers.get(), timeout=max(0.1, timeout))
        except TimeoutError:
            break
        got += 1
        say(f"← {answer.get('body', '')}")
    await nc.close()
    if got == 0:
        say(f"(no answer within {wait_seconds:.0f}s: is the notifier running in console mode?)")
        sys.stdout.flush()
        return 1
    return 0
