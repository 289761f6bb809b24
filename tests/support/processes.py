"""Runs the product as a user does: the `oncall` command in a child process."""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

# The console script a user runs, from the same environment as the tests.
ONCALL = [str(Path(sys.executable).with_name("oncall"))]
REPO_ROOT = Path(__file__).resolve().parents[2]
# Settings a developer may have in their shell must not leak into a test's product.
PRODUCT_ENV_PREFIXES = (
    "NATS_",
    "ONCALL_",
    "INGEST_",
    "OPENAI_",
    "TWILIO_",
    "USER_WHATSAPP",
    "PUBLIC_BASE",
    "JIRA_",
    "GITHUB_",
    "LB_URL",
    "LOKI_URL",
    "PROM_URL",
    "CODE_DIR",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def product_env(settings: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(PRODUCT_ENV_PREFIXES)}
    env.update(settings)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class OncallProcess:
    def __init__(self, args: list[str], settings: dict[str, str], log_dir: Path):
        self.port = int(settings.get("ONCALL_HTTP_PORT") or free_port())
        self.settings = {**settings, "ONCALL_HTTP_PORT": str(self.port)}
        self.url = f"http://127.0.0.1:{self.port}"
        self.stdout_path = log_dir / f"oncall-{self.port}.out"
        self.stderr_path = log_dir / f"oncall-{self.port}.err"
        self._stdout = self.stdout_path.open("w")
        self._stderr = self.stderr_path.open("w")
        self.proc = subprocess.Popen(
            [*ONCALL, *args],
            cwd=REPO_ROOT,
            env=product_env(self.settings),
            stdout=self._stdout,
            stderr=self._stderr,
        )

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text()

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"oncall exited with {self.proc.returncode}:\n{self.stderr[-3000:]}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"oncall not ready after {timeout}s:\n{self.stderr[-3000:]}")

    def wait_for_output(self, text: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.stdout
            if text in out:
                return out
            time.sleep(0.05)
        raise TimeoutError(f"{text!r} not printed within {timeout}s; stdout:\n{self.stdout[-3000:]}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._stdout.close()
        self._stderr.close()
        return self.proc.returncode


@contextmanager
def oncall_up(settings: dict[str, str], log_dir: Path) -> Iterator[OncallProcess]:
    """`oncall up` with these settings, ready to serve; stopped (SIGTERM) afterwards."""
    process = OncallProcess(["up"], settings, log_dir)
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


def run_oncall(
    args: list[str], settings: dict[str, str], timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ONCALL, *args],
        cwd=REPO_ROOT,
        env=product_env(settings),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
