"""The NATS users of deploy/k8s/nats/auth.conf, derived from deploy/k8s/nats/bus-permissions.yaml.

`expected_permissions` turns the table (what each service does on the bus) into the NATS
subjects it needs; `render_auth_conf` writes auth.conf from it; `parse_nats_conf` reads a
NATS config back (the subset of the format our own files use) so that the tests compare
permissions as sets, not as text.

Regenerate auth.conf after changing the table or the contracts:

    .venv/bin/python tests/deploy/nats_permissions.py > deploy/k8s/nats/auth.conf
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # run as a script
    sys.path.insert(0, str(REPO_ROOT))

from services.contracts import streams, subjects  # noqa: E402

NATS_DIR = REPO_ROOT / "deploy" / "k8s" / "nats"
TABLE_PATH = NATS_DIR / "bus-permissions.yaml"
AUTH_CONF_PATH = NATS_DIR / "auth.conf"

INBOX = "_INBOX.>"
EVERYTHING = ">"


@dataclass(frozen=True)
class UserPermissions:
    publish: frozenset[str]
    subscribe: frozenset[str]
    allow_responses: bool = False


def load_table(path: Path = TABLE_PATH) -> dict[str, Any]:
    table: dict[str, Any] = yaml.safe_load(path.read_text())
    return table


def password_variable(user: str) -> str:
    """The environment variable (and Secret key) holding a NATS user's password."""
    return "NATS_PASSWORD_" + re.sub(r"[^A-Za-z0-9]", "_", user).upper()


def kv_stream(bucket: str) -> str:
    return f"KV_{bucket}"


def declare_subjects() -> set[str]:
    """Bus.declare, run by every service at start: create or update each stream, look up or
    create each bucket."""
    needed: set[str] = set()
    for stream in streams.ALL_STREAMS:
        needed |= {f"$JS.API.STREAM.CREATE.{stream.name}", f"$JS.API.STREAM.UPDATE.{stream.name}"}
    for bucket in streams.ALL_BUCKETS:
        kv = kv_stream(bucket.name)
        needed |= {f"$JS.API.STREAM.INFO.{kv}", f"$JS.API.STREAM.CREATE.{kv}"}
    return needed


def consumer_subjects(stream: str, durable: str, filter_subject: str) -> set[str]:
    """A durable pull consumer as nats-py drives it: look it up, create it when missing (the
    filter subject is part of the API subject), fetch, ack/nak; and its dead letters."""
    return {
        f"$JS.API.CONSUMER.INFO.{stream}.{durable}",
        f"$JS.API.CONSUMER.CREATE.{stream}.{durable}.{filter_subject}",
        f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}",
        f"$JS.ACK.{stream}.{durable}.>",
        subjects.dlq_subject(stream),
    }


def kv_subjects(bucket: str) -> set[str]:
    """Get (the buckets are created without direct get), put/create/update/delete."""
    return {f"$KV.{bucket}.>", f"$JS.API.STREAM.MSG.GET.{kv_stream(bucket)}"}


def kv_list_subjects(bucket: str) -> set[str]:
    """KeyValue.keys(): an ephemeral ordered push consumer (no name) on the bucket's stream,
    its info, and the flow-control replies ordered consumers send."""
    kv = kv_stream(bucket)
    return {
        f"$JS.API.CONSUMER.CREATE.{kv}",
        f"$JS.API.CONSUMER.INFO.{kv}.*",
        f"$JS.FC.{kv}.>",
    }


def service_permissions(spec: dict[str, Any]) -> UserPermissions:
    publish = set(declare_subjects())
    publish |= set(spec.get("publish") or [])
    publish |= set(spec.get("request") or [])
    for consumer in spec.get("consume") or []:
        publish |= consumer_subjects(consumer["stream"], consumer["durable"], consumer["subject"])
    for bucket in spec.get("kv") or []:
        publish |= kv_subjects(bucket)
    for bucket in spec.get("kv_list") or []:
        publish |= kv_list_subjects(bucket)
    subscribe = {INBOX} | {f"{s['subject']} {s['queue']}" for s in spec.get("serve") or []}
    return UserPermissions(frozenset(publish), frozenset(subscribe), allow_responses=bool(spec.get("serve")))


def expected_permissions(table: dict[str, Any]) -> dict[str, UserPermissions]:
    users = {name: service_permissions(spec or {}) for name, spec in table["services"].items()}
    for operator in table.get("operators") or []:
        users[operator] = UserPermissions(frozenset({EVERYTHING}), frozenset({EVERYTHING}))
    return users


# --- rendering --------------------------------------------------------------------------------

_HEADER = """\
# NATS users: one per service, each allowed exactly what it does on the bus, plus the
# operators' user. Generated from bus-permissions.yaml (see that file); regenerate with
#   .venv/bin/python tests/deploy/nats_permissions.py > deploy/k8s/nats/auth.conf
# tests/deploy/test_nats_permissions.py fails when this file, that table, the contracts
# and the code disagree.
#
# Passwords come from the Secret oncall-nats, through the nats pods' environment.
# Subjects are quoted: an unquoted $JS... would be read as a variable.
# What is not allowed is denied: a service cannot read another's consumers, write a bucket
# it does not own, delete streams, or publish events it does not produce.
# _INBOX.> is every client's reply inbox (JetStream API answers, publish acks, tool replies):
# nats-py's default inbox prefix is shared, so it cannot be narrowed per service.
"""


def _quoted(items: frozenset[str]) -> str:
    return ", ".join(f'"{item}"' for item in sorted(items))


def _list_block(name: str, items: frozenset[str], indent: str) -> list[str]:
    if len(items) <= 1:
        return [f"{indent}{name}: {{ allow: [{_quoted(items)}] }}"]
    lines = [f"{indent}{name}: {{ allow: ["]
    lines += [f'{indent}  "{item}"' for item in sorted(items)]
    lines.append(f"{indent}] }}")
    return lines


def render_auth_conf(table: dict[str, Any]) -> str:
    lines = [_HEADER, "authorization {", "  timeout: 2", "  users: ["]
    for user, perms in expected_permissions(table).items():
        lines += [
            "    {",
            f"      user: {user}",
            f"      password: ${password_variable(user)}",
            "      permissions: {",
            *_list_block("publish", perms.publish, "        "),
            *_list_block("subscribe", perms.subscribe, "        "),
        ]
        if perms.allow_responses:
            lines.append("        # Replies to the requests it received, and only those.")
            lines.append("        allow_responses: true")
        lines += ["      }", "    }"]
    lines += ["  ]", "}", ""]
    return "\n".join(lines)


# --- parsing ----------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<space>[\s,]+)
  | (?P<comment>(\#|//)[^\n]*)
  | (?P<string>"(?:[^"\\]|\\.)*"|'[^']*')
  | (?P<punct>[{}\[\]:=])
  | (?P<word>[^\s,{}\[\]:="'#]+(?::[^\s,{}\[\]="'#]+)*)
    """,
    re.VERBOSE,
)


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise ValueError(f"cannot read NATS config at {text[pos : pos + 40]!r}")
        pos = match.end()
        kind = match.lastgroup
        if kind in ("space", "comment"):
            continue
        value = match.group()
        out.append(value[1:-1] if kind == "string" else value)
    return out


def parse_nats_conf(text: str) -> dict[str, Any]:
    """The NATS config format as far as our files use it: `key: value`, `key = value`,
    `key value`, blocks, arrays, quoted and bare strings, comments. Values stay strings."""
    tokens = _tokens(text)
    position = 0

    def value() -> Any:
        nonlocal position
        token = tokens[position]
        position += 1
        if token == "{":
            return block("}")
        if token == "[":
            items: list[Any] = []
            while tokens[position] != "]":
                items.append(value())
            position += 1
            return items
        return token

    def block(end: str | None) -> dict[str, Any]:
        nonlocal position
        result: dict[str, Any] = {}
        while position < len(tokens) and tokens[position] != end:
            key = tokens[position]
            position += 1
            if tokens[position] in (":", "="):
                position += 1
            result[key] = value()
        position += 1  # the closing brace
        return result

    return block(None)


def permissions_in_conf(conf: dict[str, Any]) -> dict[str, UserPermissions]:
    users: dict[str, UserPermissions] = {}
    for user in conf["authorization"]["users"]:
        perms = user.get("permissions", {})
        users[user["user"]] = UserPermissions(
            publish=frozenset(perms.get("publish", {}).get("allow", [])),
            subscribe=frozenset(perms.get("subscribe", {}).get("allow", [])),
            allow_responses=str(perms.get("allow_responses", "false")).lower() == "true",
        )
    return users


if __name__ == "__main__":
    sys.stdout.write(render_auth_conf(load_table()))
