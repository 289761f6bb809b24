"""Every setting the product reads is a row of the README's settings table."""

from __future__ import annotations

import re
from pathlib import Path

from services.runtime.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def documented_variables() -> set[str]:
    """The variables named in the first column of the table under `## Settings`."""
    section = README.read_text(encoding="utf-8").split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    first_cells = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]
    return {name for cell in first_cells for name in re.findall(r"`([A-Z][A-Z0-9_]*)`", cell)}


def test_every_setting_has_a_row() -> None:
    variables = {field.alias for field in Settings.model_fields.values() if field.alias}
    assert len(variables) == len(Settings.model_fields)  # each field is read from its own variable
    assert sorted(variables - documented_variables()) == []


def test_the_table_names_no_setting_that_does_not_exist() -> None:
    variables = {field.alias for field in Settings.model_fields.values()}
    assert sorted(documented_variables() - variables) == []
