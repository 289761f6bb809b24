"""The product's environment variables: every setting is read from a variable whose name starts
with one of these prefixes (README, "Settings"). A child process that must see only the settings
it is given, such as a test's or a benchmark's `oncall`, gets the environment without them."""

from __future__ import annotations

from collections.abc import Mapping

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
    "ALERTMANAGER_",
)


def without_product_settings(environ: Mapping[str, str]) -> dict[str, str]:
    """`environ` less every variable the product would read as a setting."""
    return {name: value for name, value in environ.items() if not name.startswith(PRODUCT_ENV_PREFIXES)}
