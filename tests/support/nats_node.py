"""A nats-server a test can stop and start again on the same port and store: the outage a client
reconnects through (tests/faults, the notifier's webhook while NATS is away).

Started with `start_process` (a process group of its own, ended by `end_process_group`), so the
leftover check of tests/support/leftovers.py covers it like any other child.
"""

import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from services.runtime.embedded_nats import nats_server_binary

from .processes import end_process_group, free_port, start_process

READY_TIMEOUT_SECONDS = 20.0


class RestartableNats:
    def __init__(self, store_dir: Path, port: int | None = None) -> None:
        self.store_dir = store_dir
        self.port = port or free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[Any] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self) -> Self:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        args = [str(nats_server_binary()), "-a", "127.0.0.1", "-p", str(self.port), "-js"]
        self._proc = start_process(
            [*args, "-sd", str(self.store_dir / "jetstream")],
            stdout=subprocess.DEVNULL,
            stderr=(self.store_dir / "nats-server.log").open("a"),
        )
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while not self._answers():
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"nats-server exited with {self._proc.returncode} (port {self.port} taken?)"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(f"nats-server not listening on {self.port}")
            time.sleep(0.02)
        return self

    def stop(self, kill: bool = False) -> None:
        """SIGTERM (a clean shutdown, JetStream flushed), or SIGKILL with `kill`; the port is kept."""
        if self._proc is None:
            return
        end_process_group(self._proc, timeout=0.0 if kill else 10.0)
        self._proc = None

    def restart(self, down_seconds: float = 0.0, kill: bool = False) -> None:
        self.stop(kill=kill)
        time.sleep(down_seconds)
        self.start()

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                return sock.recv(4).startswith(b"INFO")
        except OSError:
            return False

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
