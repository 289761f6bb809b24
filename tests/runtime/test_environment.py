"""The product's environment variables: the prefixes that keep a developer's settings out of the
`oncall` processes that tests and benchmarks start."""

from __future__ import annotations

import re
from pathlib import Path

from services.runtime.environment import PRODUCT_ENV_PREFIXES, without_product_settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_documented_setting_has_a_product_prefix() -> None:
    section = README.read_text(encoding="utf-8").split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    first_cells = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]
    variables = {name for cell in first_cells for name in re.findall(r"`([A-Z][A-Z0-9_]*)`", cell)}
    assert "ALERTMANAGER_URL" in variables
    assert sorted(v for v in variables if not v.startswith(PRODUCT_ENV_PREFIXES)) == []


def test_only_product_settings_are_left_out() -> None:
    environ = {
        "PATH": "/usr/bin",
        "HOME": "/root",
        "ONCALL_DATA_DIR": "/tmp/x",
        "ALERTMANAGER_URL": "http://am",
    }
    assert without_product_settings(environ) == {"PATH": "/usr/bin", "HOME": "/root"}
