"""The one rule for tests that need a server binary from outside the Python environment.

Prometheus, Alertmanager and their `promtool` and `amtool` come from the Debian packages
`prometheus` and `prometheus-alertmanager`. Without the binary the test is SKIPPED, with a
message saying how to install it (README, "Development"); with ONCALL_REQUIRE_INTEGRATION=1 in
the environment (CI sets it in .ci/run) a missing binary is a FAILURE, so that CI never passes
by skipping them.
"""

import os
import shutil
from typing import Final

import pytest

REQUIRE_VARIABLE: Final = "ONCALL_REQUIRE_INTEGRATION"
INSTALL_HINT: Final = "sudo apt-get install prometheus prometheus-alertmanager (README, Development)"
# The binaries this rule covers, by the Debian package that brings them.
PACKAGE_OF: Final = {
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "amtool": "prometheus-alertmanager",
}


def integration_required() -> bool:
    return os.environ.get(REQUIRE_VARIABLE, "") == "1"


def require_binary(name: str) -> str:
    """The path of `name` on PATH; otherwise skips the calling test (or fixture), or fails it when
    ONCALL_REQUIRE_INTEGRATION=1."""
    if name not in PACKAGE_OF:
        raise ValueError(f"{name} is not one of the binaries this rule covers: {sorted(PACKAGE_OF)}")
    path = shutil.which(name)
    if path is not None:
        return path
    message = f"needs {name}: {INSTALL_HINT}"
    if integration_required():
        pytest.fail(f"{message}; {REQUIRE_VARIABLE}=1 turns this skip into a failure", pytrace=False)
    pytest.skip(message)
