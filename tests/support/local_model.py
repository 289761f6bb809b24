"""The real local model the tests marked `model` run against: llama.cpp's llama-server and the
Qwen2.5-Coder 1.5B GGUF, built and assembled by scripts/local_model/ into the model cache
(ONCALL_MODEL_CACHE, default ~/.cache/oncall-model). Without them those tests are SKIPPED with the
scripts to run; with ONCALL_REQUIRE_INTEGRATION=1 (CI) they FAIL, the rule of binaries.py."""

import os
from pathlib import Path
from typing import Final

import pytest

from .binaries import REQUIRE_VARIABLE, integration_required

BUILD_SCRIPT: Final = "scripts/local_model/build_llama_server.sh"
FETCH_SCRIPT: Final = "scripts/local_model/fetch_model.py"
MODEL_FILE: Final = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
# How the server is started: tools need --jinja; one slot using both cores; fixed seed.
SERVER_FLAGS: Final = ("--jinja", "-c", "8192", "-np", "1", "-t", "2", "--no-webui", "--alias", "local")
SEED: Final = 42
CONTEXT_TOKENS: Final = 8192


def cache_dir() -> Path:
    return Path(os.environ.get("ONCALL_MODEL_CACHE") or Path.home() / ".cache" / "oncall-model")


def require_local_model() -> tuple[Path, Path]:
    """(llama-server, the GGUF); otherwise skips the calling fixture, or fails it in CI."""
    server = cache_dir() / "bin" / "llama-server"
    model = cache_dir() / MODEL_FILE
    missing = [
        f"{path} (run {script})"
        for path, script in ((server, BUILD_SCRIPT), (model, f"{FETCH_SCRIPT} 1.5b"))
        if not path.exists()
    ]
    if not missing:
        return server, model
    message = "needs the local model: " + "; ".join(missing)
    if integration_required():
        pytest.fail(f"{message}; {REQUIRE_VARIABLE}=1 turns this skip into a failure", pytrace=False)
    pytest.skip(message)
