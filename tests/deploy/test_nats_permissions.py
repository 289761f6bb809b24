"""The NATS users: auth.conf against the table (deploy/k8s/nats/bus-permissions.yaml), the
table against the contracts and the code, the config against the real nats-server, and the
five services running under these users through a whole incident without one permission
violation."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from code_usage import (
    all_services,
    buckets_used_by,
    event_subject_constants,
    requests_tools,
    subjects_published_by,
    wired_subscribers,
)
from k8s_render import K8S_DIR, containers, named, render
from nats_permissions import (
    AUTH_CONF_PATH,
    EVERYTHING,
    INBOX,
    expected_permissions,
    load_table,
    parse_nats_conf,
    password_variable,
    permissions_in_conf,
)
from support.processes import OncallProcess, process_group, run_process

from services.contracts import consumers, streams, subjects
from services.contracts.models import HumanReplied
from services.contracts.streams import ConsumerSpec
from services.runtime.embedded_nats import nats_server_binary

TABLE = load_table()
ACTUAL = permissions_in_conf(parse_nats_conf(AUTH_CONF_PATH.read_text()))
SERVICES = TABLE["services"]
OPERATORS = set(TABLE["operators"])
CONTRACT_CONSUMERS = [v for v in vars(consumers).values() if isinstance(v, ConsumerSpec)]
STREAM_NAMES = {s.name for s in streams.ALL_STREAMS}
BUCKET_NAMES = {b.name for b in streams.ALL_BUCKETS}
TOOLS_SUBJECT = subjects.tool_subject("*")


def _owner(durable: str) -> str:
    """contracts name durables `<service>-<what>` (alert_ingest as alert-ingest)."""
    for service in all_services():
        if durable.startswith(service.replace("_", "-") + "-"):
            return service
    raise AssertionError(f"durable {durable} names no service")


# --- auth.conf == the table --------------------------------------------------------------------


def test_auth_conf_grants_exactly_what_the_table_says() -> None:
    expected = expected_permissions(TABLE)
    assert set(ACTUAL) == set(expected)
    for user, perms in expected.items():
        assert ACTUAL[user] == perms, (
            f"{user}: auth.conf differs from bus-permissions.yaml; regenerate it with "
            "`.venv/bin/python tests/deploy/nats_permissions.py > deploy/k8s/nats/auth.conf`"
        )


def test_one_user_per_service_plus_the_operators() -> None:
    assert set(SERVICES) == set(all_services())
    assert set(ACTUAL) == set(all_services()) | OPERATORS
    conf = parse_nats_conf(AUTH_CONF_PATH.read_text())
    for user in conf["authorization"]["users"]:
        assert user["password"] == "$" + password_variable(user["user"])


# --- the table == the contracts ------------------------------------------------------------


def test_every_contract_consumer_is_granted_to_its_owner_only() -> None:
    granted = {
        (service, c["stream"], c["durable"], c["subject"])
        for service, spec in SERVICES.items()
        for c in (spec or {}).get("consume") or []
    }
    contract = {(_owner(c.durable), c.stream.name, c.durable, *c.subjects) for c in CONTRACT_CONSUMERS}
    assert granted == contract


def test_the_table_names_only_contract_subjects_and_buckets() -> None:
    events = set(event_subject_constants().values())
    for service, spec in SERVICES.items():
        spec = spec or {}
        assert set(spec.get("publish") or []) <= events, service
        assert set(spec.get("request") or []) <= {TOOLS_SUBJECT}, service
        for serve in spec.get("serve") or []:
            assert (serve["subject"], serve["queue"]) == (TOOLS_SUBJECT, subjects.TOOLS_QUEUE)
        assert set(spec.get("kv") or []) <= BUCKET_NAMES, service
        assert set(spec.get("kv_list") or []) <= set(spec.get("kv") or []), service


def test_every_subject_of_the_contracts_is_used() -> None:
    published = {s for spec in SERVICES.values() for s in (spec or {}).get("publish") or []}
    assert published == set(event_subject_constants().values()), (
        "a subject nobody publishes, or an unknown one"
    )
    # Every stream's subjects have a producer.
    for stream in streams.ALL_STREAMS:
        for pattern in stream.subjects:
            prefix = pattern.removesuffix(">")
            assert any(
                s.startswith(prefix) for perms in ACTUAL.values() for s in perms.publish if s != EVERYTHING
            )
    assert any(TOOLS_SUBJECT in (spec or {}).get("request", []) for spec in SERVICES.values())
    assert any((spec or {}).get("serve") for spec in SERVICES.values())


_SYSTEM = [
    r"\$JS\.API\.STREAM\.(CREATE|UPDATE|INFO|MSG\.GET)\.(?P<stream>[^.]+)",
    r"\$JS\.API\.CONSUMER\.(INFO|MSG\.NEXT)\.(?P<stream>[^.]+)\.(?P<durable>[^.]+)",
    r"\$JS\.API\.CONSUMER\.CREATE\.(?P<stream>[^.]+)\.(?P<durable>[^.]+)\.(?P<filter>.+)",
    r"\$JS\.API\.CONSUMER\.CREATE\.(?P<stream>KV_[^.]+)",
    r"\$JS\.ACK\.(?P<stream>[^.]+)\.(?P<durable>[^.]+)\.>",
    r"\$JS\.FC\.(?P<stream>KV_[^.]+)\.>",
    r"\$KV\.(?P<bucket>[^.]+)\.>",
]


def _classify(subject: str) -> bool:
    """True when a permission names only what the contracts define."""
    events = set(event_subject_constants().values())
    durables = {c.durable for c in CONTRACT_CONSUMERS}
    kv_streams = {f"KV_{b}" for b in BUCKET_NAMES}
    if subject in events or subject in (TOOLS_SUBJECT, INBOX):
        return True
    if subject in {subjects.dlq_subject(s) for s in STREAM_NAMES}:
        return True
    for pattern in _SYSTEM:
        match = re.fullmatch(pattern, subject)
        if match is None:
            continue
        parts = match.groupdict()
        if "stream" in parts and parts["stream"] not in STREAM_NAMES | kv_streams:
            return False
        if parts.get("durable") not in (None, "*") and parts["durable"] not in durables:
            return False
        if "filter" in parts and parts["filter"] not in events:
            return False
        return not ("bucket" in parts and parts["bucket"] not in BUCKET_NAMES)
    return False


def test_no_permission_names_anything_the_contracts_do_not_define() -> None:
    for user, perms in ACTUAL.items():
        if user in OPERATORS:
            continue
        for subject in perms.publish:
            assert _classify(subject), f"{user} may publish {subject}"
        for entry in perms.subscribe:
            subject, _, queue = entry.partition(" ")
            assert _classify(subject), f"{user} may subscribe to {subject}"
            assert queue in ("", subjects.TOOLS_QUEUE)
        assert ">" not in perms.publish and ">" not in perms.subscribe


# --- the table covers the code ---------------------------------------------------------------


@pytest.mark.parametrize("service", all_services())
def test_the_table_covers_what_the_code_does(service: str) -> None:
    spec = SERVICES[service] or {}
    consumed = {(c["stream"], c["durable"], c["subject"]) for c in spec.get("consume") or []}
    served = {(s["subject"], s["queue"]) for s in spec.get("serve") or []}
    for sub in wired_subscribers(service):
        if sub.durable:
            assert (sub.stream, sub.durable, sub.subject) in consumed, f"{service} consumes {sub}"
        else:
            assert any(
                re.fullmatch(subject.replace(".", r"\.").replace("*", r"[^.]+"), sub.subject)
                and queue == sub.queue
                for subject, queue in served
            ), f"{service} subscribes to {sub.subject} (queue {sub.queue!r})"
    assert subjects_published_by(service) <= set(spec.get("publish") or [])
    assert buckets_used_by(service) <= set(spec.get("kv") or [])
    assert requests_tools(service) == (TOOLS_SUBJECT in (spec.get("request") or []))


# --- the real nats-server ------------------------------------------------------------------


def _nats_env() -> dict[str, str]:
    """Every variable the NATS container has (dummy secret values), as the pod would."""
    (container,) = containers(named(render(), "StatefulSet", "nats"))
    env: dict[str, str] = {}
    for entry in container["env"]:
        if "valueFrom" in entry:
            env[entry["name"]] = f"dummy-{entry['name'].lower()}"
    for entry in container["env"]:
        if "value" in entry:
            env[entry["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], entry["value"])
    env["POD_NAME"] = "nats-0"
    return env


def test_nats_conf_passes_the_real_nats_server(tmp_path: Path) -> None:
    """`nats-server -t`: the server's own parser, with the pod's environment (a variable the
    StatefulSet does not set fails here)."""
    for name in ("nats.conf", "auth.conf"):
        (tmp_path / name).write_text((K8S_DIR / "nats" / name).read_text())
    result = run_process(
        [str(nats_server_binary()), "-c", str(tmp_path / "nats.conf"), "-t"], timeout=30, env=_nats_env()
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("nats.conf", "auth.conf"):
        text = re.sub(r'"[^"]*"|#[^\n]*', "", (K8S_DIR / "nats" / name).read_text())
        assert set(re.findall(r"\$(\w+)", text)) <= set(_nats_env()), name


PASSWORDS = {user: f"pw-{user}" for user in [*all_services(), *OPERATORS]}


@contextmanager
def nats_with_our_users(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A single nats-server with JetStream and exactly the users of auth.conf (the cluster part
    of nats.conf needs three servers; the permissions do not)."""
    (tmp_path / "auth.conf").write_text(AUTH_CONF_PATH.read_text())
    (tmp_path / "test.conf").write_text("include ./auth.conf\nmax_payload: 2MB\n")
    ports_dir = tmp_path / "ports"
    ports_dir.mkdir()
    log = tmp_path / "nats.log"
    env = {password_variable(user): password for user, password in PASSWORDS.items()}
    with process_group(
        [
            str(nats_server_binary()),
            *("-c", str(tmp_path / "test.conf")),
            *("-a", "127.0.0.1", "-p", "-1", "-js", "-sd", str(tmp_path / "js")),
            *("--ports_file_dir", str(ports_dir), "-l", str(log)),
        ],
        timeout=10,
        env=env,
    ) as proc:
        deadline = time.monotonic() + 10
        while not list(ports_dir.glob("*.ports")):
            assert proc.poll() is None, log.read_text() if log.exists() else "nats-server exited"
            assert time.monotonic() < deadline, "nats-server did not start"
            time.sleep(0.02)
        port = int(json.loads(next(ports_dir.glob("*.ports")).read_text())["nats"][0].rpartition(":")[2])
        yield port, log


def _service_settings(service: str, port: int, data_dir: Path) -> dict[str, str]:
    """The Deployment's environment (ConfigMap and its own NATS user), pointed at this server;
    outside systems left unconfigured so that nothing waits for an unreachable host."""
    config = dict(named(render(), "ConfigMap", "oncall-config")["data"])
    del config["ONCALL_HTTP_PORT"]  # each process on its own free port (OncallProcess picks one)
    config.update(
        {
            "NATS_URL": f"nats://{service}:{PASSWORDS[service]}@127.0.0.1:{port}",
            "ONCALL_JS_REPLICAS": "1",  # one server here
            "ONCALL_HTTP_HOST": "127.0.0.1",
            "ONCALL_DATA_DIR": str(data_dir / service),
            "ONCALL_LOG_FORMAT": "text",
            "INGEST_TOKEN": "ingest-token",
            "ALERTMANAGER_URL": "",
            "PROM_URL": "",
        }
    )
    return config


async def _wait_for_console(sub: Any, needle: str, within: float = 20.0) -> str:
    deadline = time.monotonic() + within
    seen: list[str] = []
    while time.monotonic() < deadline:
        try:
            msg = await sub.next_msg(timeout=max(0.1, deadline - time.monotonic()))
        except nats.errors.TimeoutError:
            break
        body = json.loads(msg.data)["body"]
        seen.append(body)
        if needle.lower() in body.lower():
            return str(body)
    raise AssertionError(f"no console message with {needle!r} within {within}s; got {seen}")


async def _run_an_incident(processes: list[OncallProcess], port: int, webhook: bytes) -> None:
    admin = await nats.connect(f"nats://admin:{PASSWORDS['admin']}@127.0.0.1:{port}")
    try:
        console = await admin.subscribe(subjects.CONSOLE_OUT)
        async with httpx.AsyncClient(base_url=processes[0].url) as http:
            response = await http.post(
                "/alerts",
                content=webhook,
                headers={"Authorization": "Bearer ingest-token", "Content-Type": "application/json"},
            )
        assert response.status_code == 202, response.text
        incident = response.json()["incident_ids"][0]
        await _wait_for_console(console, "diagnosis")
        js = admin.jetstream()
        replies = [("create jira task and assign to ravi", "jira"), ("silence this for 2h", "alertmanager")]
        for n, (text, answer) in enumerate(replies):
            reply = HumanReplied(
                message_sid=f"SMdeploytest{n}", sender="console", body=text, channel="console"
            )
            # The first reply names no incident: the diagnoser reads the index of open incidents.
            reply.incident_id = incident if n else None
            await js.publish(subjects.HUMAN_REPLIED, reply.to_bytes())
            await _wait_for_console(console, answer)
    finally:
        await admin.close()


async def test_a_whole_incident_runs_under_these_users_without_a_violation(
    tmp_path: Path, fixtures_dir: Path
) -> None:
    """alert -> diagnosis on the console channel -> "create jira task" -> ticketing answers ->
    "silence" -> alert_ingest answers: all five services, each as its own NATS user. A
    permission missing shows as a violation in the server's log (reported first: it explains
    the rest); one too many is caught by the static tests above."""
    failure: Exception | None = None
    webhook = (fixtures_dir / "alertmanager_webhook_real.json").read_bytes()
    with nats_with_our_users(tmp_path) as (port, log), contextlib.ExitStack() as owned:
        processes = [  # each one stopped on the way out, even if a later one fails to start
            owned.enter_context(
                OncallProcess(["run", service], _service_settings(service, port, tmp_path), tmp_path)
            )
            for service in all_services()
        ]
        try:
            for process in processes:
                process.wait_ready(timeout=30)
            await _run_an_incident(processes, port, webhook)
        except Exception as exc:
            failure = exc
        finally:
            for process in processes:  # SIGTERM to all at once, then wait for each
                process.proc.terminate()
            for process in processes:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.proc.wait(timeout=15)
                process.stop()
        violations = [line for line in log.read_text().splitlines() if "Violation" in line]
    assert not violations, "\n".join(violations)
    if failure is not None:
        raise failure
