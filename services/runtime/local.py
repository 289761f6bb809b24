"""Local mode for people: `oncall demo` (a whole incident from nothing) and `oncall reply`
(answer as the on-call person through the console channel)."""

import asyncio
import contextlib
import json
import os
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

from services.contracts import subjects
from services.contracts.models import HumanReplied, IncidentDiagnosed, incident_tag
from services.runtime import demo
from services.runtime.broker import check_reachable, nats_servers
from services.runtime.data_dir import read_local_state
from services.runtime.host import Host
from services.runtime.service import configure, service_names
from services.runtime.settings import ProcessSettings


def reply_example() -> str:
    """`oncall reply ...` as the person can type it: the bare name when on PATH, else its path."""
    command = "oncall" if shutil.which("oncall") else str(Path(sys.argv[0]).resolve())
    return f'{command} reply "create jira task and assign to ravi"'


def count_words(count: int) -> str:
    words = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
    return words[count] if count < len(words) else str(count)


def say(text: str) -> None:
    print(text, flush=True)


def free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def demo_port(settings: ProcessSettings, port_chosen: bool) -> int:
    """The port the person chose (a busy one is then an error that says how to choose another);
    else the default one when it is free, else any free port, said out loud."""
    if settings.http_port and (port_chosen or port_is_free(settings.http_host, settings.http_port)):
        return settings.http_port
    port = free_port(settings.http_host)
    if settings.http_port:
        say(f"  port {settings.http_port} is busy: using {port} (choose one with --http-port)")
    return port


def demo_overrides(settings: ProcessSettings, ingest_token: str) -> dict[str, object]:
    """The services' settings the demo sets (by variable name): it serves its own logs and Prometheus
    endpoints and code directory, and talks to itself with the ingest token; Twilio/OpenAI/Jira
    settings, if any, are kept."""
    base = f"http://{settings.http_host}:{settings.http_port}{demo.DEMO_PREFIX}"
    return {
        "LB_URL": base,
        "PROM_URL": base,
        "CODE_DIR": demo.install_demo_code(settings.data_dir / "demo" / "code"),
        "GITHUB_OWNER": None,
        "GITHUB_REPO": None,
        "INGEST_TOKEN": ingest_token,
    }


async def run_demo(settings: ProcessSettings, once: bool, port_chosen: bool = False) -> int:
    settings = settings.model_copy(update={"http_port": demo_port(settings, port_chosen)})
    # The person's own token when set, else a fresh one: the demo posts its alert with it.
    token = os.environ.get("INGEST_TOKEN") or secrets.token_urlsafe(24)
    hosted = configure(service_names(), demo_overrides(settings, token))
    started = time.monotonic()
    diagnosed = asyncio.Event()
    background: list[asyncio.Task[None]] = []  # keeps the finishing task referenced
    modes = ", ".join(summary for service in hosted if (summary := service.summary()))
    say(f"▶ oncall demo: all {count_words(len(hosted))} services, embedded NATS, {modes}")

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
        # A run of its own each time: a new incident, diagnosed and messaged in full, whatever
        # earlier runs in this directory left open or resolved.
        hook = demo.demo_alert_webhook(datetime.now(UTC), run_id=secrets.token_hex(3))
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.post(
                f"{host.http_url}/alerts", json=hook, headers={"Authorization": f"Bearer {token}"}
            )
        body = response.json()
        incident = (body.get("incident_ids") or ["?"])[0]
        say(f"✔ alert accepted: HTTP {response.status_code}, incident {incident_tag(incident)}")
        background.append(asyncio.create_task(_finish(host, watcher, diagnosed, once)))

    host = Host(settings, hosted, extra_routes=demo.demo_routes(), on_ready=on_ready)
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


async def send_reply(
    settings: ProcessSettings, text: str, incident: str | None, wait_seconds: float, sender: str = "console"
) -> int:
    """Publish the reply as the console channel's on-call person (`sender`) and print the agent's
    answers to it, returning at the one that says no more will follow (or after `wait_seconds`)."""
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
    message_sid = f"CONSOLE{uuid.uuid4().hex[:27]}"

    async def on_out(msg: Msg) -> None:
        answer = json.loads(msg.data)
        if isinstance(answer, dict) and answer.get("in_reply_to") == message_sid:
            await answers.put(answer)  # other messages (other people's, diagnoses) are not ours

    await nc.subscribe(subjects.CONSOLE_OUT, cb=on_out)
    reply = HumanReplied(
        message_sid=message_sid,
        sender=sender,
        body=text,
        channel="console",
        incident_id=(incident or "").strip().lstrip("#") or None,  # "#a1b2c3" or "a1b2c3"
    )
    js = nc.jetstream()
    await js.publish(
        subjects.HUMAN_REPLIED, reply.to_bytes(), headers={"Nats-Msg-Id": f"reply-{reply.message_sid}"}
    )
    say(f"→ sent as {sender}: {text}")
    got = 0
    final = False
    deadline = time.monotonic() + wait_seconds
    while not final and (left := deadline - time.monotonic()) > 0:
        try:
            answer = await asyncio.wait_for(answers.get(), timeout=left)
        except TimeoutError:
            break
        got += 1
        final = not answer.get("follow_up_expected", False)
        say(f"← {answer.get('body', '')}")
    await nc.close()
    if got == 0:
        say(f"(no answer within {wait_seconds:.0f}s: is the notifier running in console mode?)")
        sys.stdout.flush()
        return 1
    if not final:
        say(f"(no further answer within {wait_seconds:.0f}s; the oncall terminal prints it when it comes)")
    return 0
