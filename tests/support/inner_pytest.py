"""Runs pytest on a small test file in a child process, to show how the harness treats a test
(skipped or failed, processes ended or reported) from the outside."""

import os
import sys
import textwrap
from pathlib import Path

from support.processes import run_process

TESTS_DIR = Path(__file__).resolve().parents[1]


def run_pytest(
    tmp_path: Path, source: str, *options: str, env: dict[str, str] | None = None
) -> tuple[int, str]:
    """pytest on `source` (a test module) in a folder of its own, outside the repository (so no
    conftest of ours applies), with `support` importable; its exit code and output."""
    folder = tmp_path / "inner"
    folder.mkdir()
    (folder / "test_inner.py").write_text(textwrap.dedent(source))
    environment = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    environment.update(env or {})
    environment["PYTHONPATH"] = str(TESTS_DIR)
    done = run_process(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rA",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:asyncio",
            *options,
            "test_inner.py",
        ],
        timeout=120,
        cwd=folder,
        env=environment,
    )
    return done.returncode, done.stdout + done.stderr
