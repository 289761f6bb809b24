"""One llama-server for the whole session (the tests marked `model`): it loads the 1.5B model in
about 2 s and keeps the shared prompt prefix (system prompt and tools) between requests."""

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from diagnoser.diagnoser_harness import harness
from support.local_model import SEED, SERVER_FLAGS, require_local_model
from support.processes import end_process_group, free_port, start_process

READY_TIMEOUT_SECONDS = 120.0


@dataclass(frozen=True)
class LocalModel:
    base_url: str  # OpenAI-compatible: base_url + "/chat/completions"
    name: str = "local"
    log: Path | None = None


@pytest.fixture(scope="session")
def local_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalModel]:
    server, model = require_local_model()
    from support.leftovers import exempt  # imported once pytest_plugins registered it

    port = free_port()
    log_path = tmp_path_factory.mktemp("llama") / "llama-server.log"
    with log_path.open("wb") as log:
        proc = start_process(
            [
                str(server),
                "-m",
                str(model),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                *SERVER_FLAGS,
                "--seed",
                str(SEED),
            ],
            stdout=log,
            stderr=log,
        )
    exempt(proc.pid)  # the session's own server, ended below
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama-server exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"llama-server not ready in {READY_TIMEOUT_SECONDS:.0f}s:\n{log_path.read_text()[-3000:]}"
                )
            time.sleep(0.2)
        yield LocalModel(url + "/v1", log=log_path)
    finally:
        end_process_group(proc)


__all__ = ["LocalModel", "harness", "local_model"]
