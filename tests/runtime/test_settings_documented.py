"""Every setting the product reads is a row of the README's settings table: the process's own
settings and those each service declares."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic_settings import BaseSettings

from services.runtime.service import all_settings_classes
from services.runtime.settings import ProcessSettings

README = Path(__file__).resolve().parents[2] / "README.md"


def documented_variables() -> set[str]:
    """The variables named in the first column of the table under `## Settings`."""
    section = README.read_text(encoding="utf-8").split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    first_cells = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]
    return {name for cell in first_cells for name in re.findall(r"`([A-Z][A-Z0-9_]*)`", cell)}


def settings_classes() -> list[type[BaseSettings]]:
    return [ProcessSettings, *all_settings_classes()]


def read_variables() -> set[str]:
    variables: set[str] = set()
    for cls in settings_classes():
        aliases = {field.alias for field in cls.model_fields.values() if field.alias}
        assert len(aliases) == len(cls.model_fields), cls  # each field is read from its own variable
        variables |= aliases
    return variables


def test_every_setting_has_a_row() -> None:
    assert sorted(read_variables() - documented_variables()) == []


def test_the_table_names_no_setting_that_does_not_exist() -> None:
    assert sorted(documented_variables() - read_variables()) == []


def test_a_variable_means_the_same_in_every_class_that_reads_it() -> None:
    """A variable two services read is declared once (services.contracts.settings), so that they
    cannot disagree on its default or its validation."""
    owners: dict[str, set[str]] = {}
    for cls in settings_classes():
        for name, field in cls.model_fields.items():
            declared_in = next(
                base for base in reversed(cls.__mro__) if name in getattr(base, "__annotations__", {})
            )
            owners.setdefault(field.alias or name, set()).add(
                f"{declared_in.__module__}.{declared_in.__name__}"
            )
    assert {alias: sorted(found) for alias, found in owners.items() if len(found) > 1} == {}
