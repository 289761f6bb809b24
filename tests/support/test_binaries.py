"""The rule for tests that need Prometheus or Alertmanager binaries (tests/support/binaries.py):
skipped without them, with the install line; a failure instead with ONCALL_REQUIRE_INTEGRATION=1."""

from pathlib import Path

import pytest

from support.binaries import INSTALL_HINT, REQUIRE_VARIABLE
from support.inner_pytest import run_pytest

NEEDS_PROMETHEUS = """
    from support.binaries import require_binary

    def test_needs_prometheus():
        print("found", require_binary("prometheus"))
"""


@pytest.fixture
def path_without_binaries(tmp_path: Path) -> dict[str, str]:
    """A PATH with no prometheus on it (the test runs the inner pytest with sys.executable)."""
    empty = tmp_path / "bin"
    empty.mkdir()
    return {"PATH": str(empty), REQUIRE_VARIABLE: ""}


def test_a_missing_binary_skips_with_the_install_line(
    tmp_path: Path, path_without_binaries: dict[str, str]
) -> None:
    code, output = run_pytest(tmp_path, NEEDS_PROMETHEUS, env=path_without_binaries)

    assert code == 0, output
    assert "1 skipped" in output
    assert f"needs prometheus: {INSTALL_HINT}" in output
    assert "(README, Development)" in INSTALL_HINT


def test_a_missing_binary_fails_when_integration_is_required(
    tmp_path: Path, path_without_binaries: dict[str, str]
) -> None:
    code, output = run_pytest(
        tmp_path, NEEDS_PROMETHEUS, env={**path_without_binaries, REQUIRE_VARIABLE: "1"}
    )

    assert code == 1, output
    assert "1 failed" in output and "skipped" not in output
    assert f"needs prometheus: {INSTALL_HINT}" in output
    assert f"{REQUIRE_VARIABLE}=1" in output


def test_a_binary_on_path_is_used(tmp_path: Path, path_without_binaries: dict[str, str]) -> None:
    fake = Path(path_without_binaries["PATH"]) / "prometheus"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)

    code, output = run_pytest(
        tmp_path, NEEDS_PROMETHEUS, "-s", env={**path_without_binaries, REQUIRE_VARIABLE: "1"}
    )

    assert code == 0, output
    assert f"found {fake}" in output and "1 passed" in output


def test_ci_requires_the_binaries() -> None:
    ci = (Path(__file__).resolve().parents[2] / ".ci" / "run").read_text()
    assert f"export {REQUIRE_VARIABLE}=1\nmake test\n" in ci
