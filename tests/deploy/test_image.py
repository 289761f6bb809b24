"""The container image, without a Docker engine: the Dockerfile read as data (stages, base
image, user, entry point, what reaches the final stage), and the entry point run as the pods
run it: `oncall <args of each Deployment>` with the ConfigMap's environment against a real
nats-server, ready on /readyz, stopped cleanly by SIGTERM."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from k8s_render import REPO_ROOT, Doc, containers, named, of_kind, pod_spec, render
from support.processes import OncallProcess

from services.runtime.cli import build_parser
from services.runtime.service import service_names

DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
DOCS = render()
DEPLOYMENTS = of_kind(DOCS, "Deployment")
PINNED_PYTHON = re.compile(r"^python:3\.11\.\d+-slim(-[a-z]+)?$")
COMPILERS = ("gcc", "g++", "build-essential", "clang", "make ", "apt-get install", "apk add", "pip install")


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def dockerfile() -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "FROM":
            base, _, name = rest.partition(" AS ")
            stages.append(Stage(base.strip(), name.strip() or None))
        elif keyword == "ARG" and not stages:
            key, _, default = rest.partition("=")
            args[key] = default
        else:
            stages[-1].instructions.append((keyword, rest))
    return args, stages


def _exec_form(value: str) -> list[str]:
    parsed = json.loads(value)
    assert isinstance(parsed, list), f"{value} is not the exec form"
    return [str(item) for item in parsed]


def test_two_stages_from_a_pinned_python_slim() -> None:
    args, stages = dockerfile()
    assert len(stages) == 2
    build, final = stages
    assert build.name == "build" and final.name is None
    for stage in stages:
        base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], stage.base)
        assert PINNED_PYTHON.match(base), f"{base} is not a pinned python:3.11.x-slim tag"


def test_build_stage_builds_a_wheel_and_installs_it_into_a_venv() -> None:
    _, (build, final) = dockerfile()
    runs = " ".join(build.all("RUN"))
    assert "python -m venv /opt/oncall" in runs
    assert "pip wheel" in runs and "/opt/oncall/bin/pip install /wheels/" in runs
    assert "/opt/oncall/bin" in " ".join(final.all("ENV"))


def test_final_stage_gets_only_the_venv_and_no_build_tools() -> None:
    _, (build, final) = dockerfile()
    assert final.all("COPY") == [f"--from={build.name} /opt/oncall /opt/oncall"]
    for run in final.all("RUN"):
        assert not any(tool in run for tool in COMPILERS), run


def test_runs_as_the_non_root_user_the_pods_expect() -> None:
    _, (_, final) = dockerfile()
    (user,) = final.all("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0 and gid.isdigit()  # numeric: runAsNonRoot can verify it
    assert f"--uid {uid}" in " ".join(final.all("RUN"))
    for deployment in DEPLOYMENTS:
        assert pod_spec(deployment)["securityContext"]["runAsUser"] == int(uid)
        assert pod_spec(deployment)["securityContext"]["runAsGroup"] == int(gid)


def test_entrypoint_is_the_oncall_command_and_cmd_a_valid_service() -> None:
    _, (_, final) = dockerfile()
    (entrypoint,) = final.all("ENTRYPOINT")
    (cmd,) = final.all("CMD")
    assert _exec_form(entrypoint) == ["oncall"]
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["oncall"] == "services.runtime.cli:main"
    args = build_parser().parse_args(_exec_form(cmd))
    assert (args.command, args.service) == ("run", "alert_ingest")
    (expose,) = final.all("EXPOSE")
    assert f"ONCALL_HTTP_PORT={expose}" in " ".join(final.all("ENV"))


@pytest.mark.parametrize("deployment", DEPLOYMENTS, ids=[d["metadata"]["name"] for d in DEPLOYMENTS])
def test_deployment_args_are_a_valid_command_line(deployment: Doc) -> None:
    args = build_parser().parse_args(containers(deployment)[0]["args"])
    assert args.command == "run" and args.service in service_names()


def test_dockerignore_is_an_allow_list_of_what_the_build_copies() -> None:
    patterns = [
        p.strip() for p in DOCKERIGNORE.read_text().splitlines() if p.strip() and not p.startswith("#")
    ]
    assert patterns[0] == "*"
    allowed = {p.removeprefix("!").rstrip("/") for p in patterns if p.startswith("!")}
    _, (build, _) = dockerfile()
    copied = {src.rstrip("/") for copy in build.all("COPY") for src in copy.split()[:-1]}
    assert copied == allowed
    assert not {"tests", "deploy", ".venv", ".oncall", ".git"} & allowed


# --- the entry point as a process --------------------------------------------------------------


async def test_every_deployment_command_starts_and_gets_ready(clean_bus: str, tmp_path: Path) -> None:
    """Concurrently, the five pods' command lines with the ConfigMap's environment (optional
    secrets left out: every integration then runs in its not-configured mode; INGEST_TOKEN, which
    the pod cannot start without, set) against the test nats-server; each answers /readyz,
    /healthz and /metrics, and stops cleanly on SIGTERM within its termination grace period."""
    config = dict(named(DOCS, "ConfigMap", "oncall-config")["data"])
    del config["ONCALL_HTTP_PORT"]  # a free port each (OncallProcess picks one)
    processes: list[tuple[Doc, OncallProcess]] = []
    stopped: list[tuple[str, int, float, float, str]] = []
    try:
        for deployment in DEPLOYMENTS:
            (container,) = containers(deployment)
            env = {
                **config,
                "NATS_URL": clean_bus,
                "ONCALL_JS_REPLICAS": "1",  # a single test server; 3 on the cluster
                "ONCALL_HTTP_HOST": "127.0.0.1",
                "ONCALL_DATA_DIR": str(tmp_path / deployment["metadata"]["name"]),
                "INGEST_TOKEN": "ingest-token",  # secretKeyRef with optional: false
            }
            processes.append((deployment, OncallProcess(container["args"], env, tmp_path)))
        async with httpx.AsyncClient(timeout=5) as http:
            for _, process in processes:
                process.wait_ready(timeout=30)
                for path in ("/healthz", "/metrics"):
                    assert (await http.get(process.url + path)).status_code == 200
    finally:
        started = time.monotonic()
        for _, process in processes:  # SIGTERM to all at once, as a rollout would
            process.proc.terminate()
        for deployment, process in processes:
            grace = pod_spec(deployment)["terminationGracePeriodSeconds"]
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.proc.wait(timeout=grace)  # one SIGTERM, as the kubelet sends
            code = process.stop()  # SIGKILL if still running, as the kubelet would
            name = deployment["metadata"]["name"]
            stopped.append((name, code, time.monotonic() - started, grace, process.stderr[-2000:]))
    for name, code, took, grace, stderr in stopped:
        assert code == 0, f"{name} exited {code} on SIGTERM:\n{stderr}"
        assert took < grace, f"{name} took {took:.1f}s to stop"
