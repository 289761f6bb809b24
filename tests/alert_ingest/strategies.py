"""Hypothesis strategies for Alertmanager webhooks (v4) and for requests to `POST /alerts`.

Valid webhooks are shaped like the ones Alertmanager really sends (docs/vendor-contracts.md §1.1 and
the captured fixtures): Go's RFC3339Nano timestamps, `endsAt` as Go's zero time, per-alert
statuses mixed in one group, empty annotations and generatorURL, unicode label names (Prometheus
3) and values, `truncatedAlerts`, and fields this product does not know. Hostile bodies are
everything else a client can send: arbitrary JSON, a wrong type or a missing value in one field,
another `version`, huge strings and numbers, deep nesting, invalid UTF-8 and bytes that are not
JSON at all.
"""

import base64
import copy
import functools
import json
import random
import re
import string
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from hypothesis import strategies as st

from services.contracts.models import GO_ZERO_TIME, Alert, AlertGroup

JsonValue = Any
Payload = dict[str, Any]
# Where a hostile edit was made: ("receiver",) or ("alerts", 2, "labels", "severity").
FieldPath = tuple[str | int, ...]


def _wire_names(model: type[Alert] | type[AlertGroup]) -> frozenset[str]:
    """Every key the model reads (populate_by_name: the alias and the Python name)."""
    return frozenset(name for n, f in model.model_fields.items() for name in (n, f.alias) if name)


GROUP_KEYS = _wire_names(AlertGroup)
ALERT_KEYS = _wire_names(Alert)

# --- valid webhooks, as Alertmanager sends them ---------------------------------------------

prometheus_label_names = st.builds(
    str.__add__,
    st.sampled_from(string.ascii_letters + "_"),
    st.text(string.ascii_letters + string.digits + "_", max_size=15),
)
label_names = st.one_of(prometheus_label_names, st.text(min_size=1, max_size=10))  # Prometheus 3: UTF-8
label_values = st.text(max_size=24)
label_sets = st.dictionaries(label_names, label_values, max_size=3)
annotation_sets: st.SearchStrategy[dict[str, str]] = st.one_of(
    st.just({}), st.dictionaries(label_names, st.text(max_size=60), max_size=3)
)
ZONES = ["Z", "Z", "+00:00", "-05:00", "+05:30", "+05:45", "-09:30", "+14:00", "-12:00"]


def _go_time(nanoseconds: int, zone: str) -> str:
    seconds, nanos = divmod(nanoseconds, 10**9)
    wall = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{nanos:09d}".rstrip("0")
    return wall + (f".{fraction}" if fraction else "") + zone


# Go's time.RFC3339Nano, 1970 to 2200: up to 9 fractional digits, trailing zeros trimmed, Z or an offset.
rfc3339 = st.builds(_go_time, st.integers(86_400 * 10**9, 7_258_118_400 * 10**9), st.sampled_from(ZONES))


def expected_time(text: str) -> datetime | None:
    """What a timestamp from `rfc3339` means, at the microsecond precision Python keeps."""
    if text == GO_ZERO_TIME:
        return None
    text = re.sub(r"(\.\d{1,6})\d*", r"\1", text).replace("Z", "+00:00")
    return datetime.fromisoformat(text)


fingerprints = st.binary(min_size=8, max_size=8).map(bytes.hex)
generator_urls = st.sampled_from(
    [
        "",
        "http://prometheus.example:9090/graph?g0.expr=rate%28http_errors_total%5B1m%5D%29&g0.tab=1",
        "http://vm:19090/graph?g0.expr=up+%3D%3D+0&g0.tab=1",
        "https://grafana.example.com/explore?left=%7B%22queries%22%3A%5B%5D%7D",
    ]
)
small_json: st.SearchStrategy[JsonValue] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


EXTRA_NAMES = ["notification_reason", "groupURL", "silenceURL", "labels_v2", "tenant", "🙂"]


def unknown_fields(known: frozenset[str]) -> st.SearchStrategy[dict[str, JsonValue]]:
    """Fields a newer Alertmanager (or a proxy) may add; the product must ignore them."""
    names = st.one_of(st.sampled_from(EXTRA_NAMES), st.text(max_size=8).map(lambda s: f"x-{s}"))
    reasons = st.sampled_from(["new_alerts", "repeat_interval", "resolved", ""])
    values = st.one_of(reasons, st.none(), st.integers(), st.lists(st.text(max_size=4), max_size=2))
    return st.dictionaries(names.filter(lambda k: k not in known), values, max_size=2)


ALERT_EXTRAS = unknown_fields(ALERT_KEYS)
GROUP_EXTRAS = unknown_fields(GROUP_KEYS)
statuses = st.sampled_from(["firing", "resolved"])


def _alert(fields: Payload, alertname: str | None, extra: dict[str, JsonValue]) -> Payload:
    if alertname:
        fields["labels"] = {**fields["labels"], "alertname": alertname}
    return {**fields, **extra}


alerts = st.builds(
    _alert,
    st.fixed_dictionaries(
        {
            "status": statuses,
            "labels": label_sets,
            "annotations": annotation_sets,
            "startsAt": rfc3339,
            "endsAt": st.one_of(st.just(GO_ZERO_TIME), rfc3339),
            "generatorURL": generator_urls,
            "fingerprint": fingerprints,
        }
    ),
    st.sampled_from([None, "HighErrorRate", "HighLatency", "PodCrashLooping"]),
    ALERT_EXTRAS,
)


def alertmanager_group_key(group_labels: dict[str, str]) -> str:
    """How Alertmanager spells a group key: the route's matchers, then the group labels."""
    return (
        "{}:{" + ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in group_labels.items()) + "}"
    )


def _common(dicts: list[dict[str, str]]) -> dict[str, str]:
    first, *rest = dicts
    return {k: v for k, v in first.items() if all(d.get(k) == v for d in rest)}


# A few groups that come back again and again, so that the incident index sees repeats.
RECURRING_GROUP_KEYS = [
    '{}:{alertname="HighErrorRate", service="checkout"}',
    '{}/{severity="critical"}:{alertname="HighLatency"}',
    "{}:{}",
]


@functools.cache
def _alert_lists(max_alerts: int) -> st.SearchStrategy[list[Payload]]:
    return st.lists(alerts, min_size=1, max_size=max_alerts)


group_label_sets = st.dictionaries(label_names, label_values, max_size=3)
group_key_kinds = st.sampled_from(["alertmanager", "recurring", "any"])
recurring_group_keys = st.sampled_from(RECURRING_GROUP_KEYS)
any_group_keys = st.text(max_size=40)
receivers = st.one_of(st.just("oncall-agent"), st.text(max_size=20))
external_urls = st.sampled_from(["http://alertmanager:9093", "http://vm:19093", ""])
truncated_counts = st.one_of(st.just(0), st.integers(0, 2**63 - 1))


@st.composite
def webhooks(draw: st.DrawFn, max_alerts: int = 4) -> Payload:
    """A valid Alertmanager v4 webhook, as a JSON object."""
    group_alerts = draw(_alert_lists(max_alerts))
    group_labels = draw(group_label_sets)
    kind = draw(group_key_kinds)
    if kind == "alertmanager":
        group_key = alertmanager_group_key(group_labels)
    else:
        group_key = draw(recurring_group_keys if kind == "recurring" else any_group_keys)
    any_firing = any(a["status"] == "firing" for a in group_alerts)
    payload: Payload = {
        "receiver": draw(receivers),
        "status": "firing" if any_firing else "resolved",
        "alerts": group_alerts,
        "groupLabels": group_labels,
        "commonLabels": _common([a["labels"] for a in group_alerts]),
        "commonAnnotations": _common([a["annotations"] for a in group_alerts]),
        "externalURL": draw(external_urls),
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": draw(truncated_counts),
    }
    payload.update(draw(GROUP_EXTRAS))
    return payload


# --- serialisation ---------------------------------------------------------------------------

JSON_STYLES: list[dict[str, Any]] = [
    {"separators": (",", ":"), "ensure_ascii": False},  # what Go's encoding/json writes
    {},
    {"indent": 2},
    {"indent": "\t", "ensure_ascii": False},
    {"separators": (" ,  ", " :\n")},
]
json_styles = st.sampled_from(JSON_STYLES)
seeds = st.integers(0, 2**32)


def shuffled(value: JsonValue, rnd: random.Random) -> JsonValue:
    """The same JSON value with the keys of every object in another order."""
    if isinstance(value, dict):
        keys = list(value)
        rnd.shuffle(keys)
        return {k: shuffled(value[k], rnd) for k in keys}
    if isinstance(value, list):
        return [shuffled(v, rnd) for v in value]
    return value


@st.composite
def serialised(draw: st.DrawFn, value: JsonValue) -> bytes:
    """`value` as UTF-8 JSON, keys in any order, in any of the usual layouts."""
    reordered = shuffled(value, random.Random(draw(seeds)))
    return json.dumps(reordered, **draw(json_styles)).encode()


def webhook_bodies(max_alerts: int = 4) -> st.SearchStrategy[bytes]:
    return webhooks(max_alerts).flatmap(serialised)


small_webhooks = webhooks(max_alerts=2)
medium_webhooks = webhooks(max_alerts=3)
small_webhook_bodies = small_webhooks.flatmap(serialised)


# --- hostile payloads --------------------------------------------------------------------------

json_values: st.SearchStrategy[JsonValue] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
_letters = st.text(string.ascii_letters, min_size=1, max_size=8)
_containers = st.one_of(st.lists(small_json, max_size=2), st.dictionaries(st.text(max_size=4), small_json))
# Values each kind of field must refuse (pydantic's lax mode accepts "5" and true as integers,
# and numbers as unix timestamps: those are not wrong).
not_strings = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), _containers)
not_statuses = st.one_of(not_strings, st.text(max_size=10).filter(lambda s: s not in ("firing", "resolved")))
not_objects = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8), st.lists(small_json)
)
not_integers = st.one_of(
    st.none(),
    _letters,
    st.integers(-(10**6), 10**6).map(lambda n: n + 0.5),
    st.sampled_from([float("nan"), float("inf"), float("-inf")]),
    _containers,
)
not_times = st.one_of(
    st.booleans(),
    _letters,
    _containers,
    st.sampled_from(
        ["2026-13-01T00:00:00Z", "2026-11-24T25:00:00Z", "2026-11-24T06:02:41+25:00", "24/11/2026"]
    ),
)
not_versions = st.one_of(json_values.filter(lambda v: v != "4"), st.sampled_from([4, 4.0, " 4", "4.0", "v4"]))

WRONG_GROUP_VALUES: dict[str, st.SearchStrategy[JsonValue]] = {
    "version": not_versions,
    "groupKey": not_strings,
    "status": not_statuses,
    "receiver": not_strings,
    "groupLabels": not_objects,
    "commonLabels": not_objects,
    "commonAnnotations": not_objects,
    "externalURL": not_strings,
    "alerts": st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.text(max_size=8),
        st.dictionaries(st.text(max_size=4), small_json),
    ),
    "truncatedAlerts": not_integers,
}
WRONG_ALERT_VALUES: dict[str, st.SearchStrategy[JsonValue]] = {
    "status": not_statuses,
    "labels": not_objects,
    "annotations": not_objects,
    "startsAt": not_times,
    "endsAt": not_times,
    "generatorURL": not_strings,
    "fingerprint": not_strings,
}
REQUIRED_GROUP_FIELDS = ["version", "groupKey", "status", "alerts"]
REQUIRED_ALERT_FIELDS = ["status", "labels"]
LABEL_MAPS = {"groupLabels", "commonLabels", "commonAnnotations", "labels", "annotations"}


@st.composite
def broken_webhooks(draw: st.DrawFn) -> tuple[Payload, FieldPath]:
    """A valid webhook with exactly one field made invalid (wrong type, missing, a non-string
    label value, an alert that is not an object), and the path of that field."""
    payload = copy.deepcopy(draw(medium_webhooks))
    index = draw(st.integers(0, len(payload["alerts"]) - 1))
    alert = payload["alerts"][index]
    kind = draw(
        st.sampled_from(["group", "alert", "missing", "missing-in-alert", "map-value", "not-an-alert"])
    )
    if kind == "group":
        name = draw(st.sampled_from(sorted(WRONG_GROUP_VALUES)))
        payload[name] = draw(WRONG_GROUP_VALUES[name])
        return payload, (name,)
    if kind == "alert":
        name = draw(st.sampled_from(sorted(WRONG_ALERT_VALUES)))
        alert[name] = draw(WRONG_ALERT_VALUES[name])
        return payload, ("alerts", index, name)
    if kind == "missing":
        name = draw(st.sampled_from(REQUIRED_GROUP_FIELDS))
        del payload[name]
        return payload, (name,)
    if kind == "missing-in-alert":
        name = draw(st.sampled_from(REQUIRED_ALERT_FIELDS))
        del alert[name]
        return payload, ("alerts", index, name)
    if kind == "map-value":
        name = draw(st.sampled_from(sorted(LABEL_MAPS)))
        key = draw(label_names)
        target = alert if name in ("labels", "annotations") else payload
        target[name] = {**target[name], key: draw(not_strings)}
        return payload, (("alerts", index) if target is alert else ()) + (name, key)
    payload["alerts"][index] = draw(not_objects)
    return payload, ("alerts", index, "labels")


def _with(payload: Payload, path: FieldPath, value: JsonValue) -> Payload:
    changed = copy.deepcopy(payload)
    target: Any = changed
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return changed


# String fields of a webhook, and new unknown fields, where a hostile value goes.
SOMEWHERE: list[FieldPath] = [
    ("groupKey",),
    ("receiver",),
    ("extra",),
    ("commonAnnotations", "description"),
    ("alerts", 0, "fingerprint"),
    ("alerts", 0, "labels", "x"),
    ("alerts", 0, "extra"),
]


@st.composite
def huge_values(draw: st.DrawFn) -> bytes:
    """A valid webhook with one string of 10 kB to 400 kB characters."""
    payload = draw(small_webhooks)
    size = draw(st.integers(10_000, 400_000))
    value = draw(st.characters(exclude_categories=["Cs"])) * size
    return json.dumps(_with(payload, draw(st.sampled_from(SOMEWHERE)), value)).encode()


@st.composite
def huge_numbers(draw: st.DrawFn) -> bytes:
    """Integer literals longer than Python's 4,300-digit int() limit, where a number may be."""
    digits = b"9" * draw(st.integers(4_000, 50_000))
    head = b'{"version":"4","groupKey":"g","status":"firing","alerts":[],'
    return draw(
        st.sampled_from(
            [
                digits,
                head + b'"truncatedAlerts":' + digits + b"}",
                head + b'"extra":[' + digits + b"]}",
                b'{"version":' + digits + b"}",
            ]
        )
    )


@st.composite
def deep_nesting(draw: st.DrawFn) -> bytes:
    depth = draw(st.integers(1, 200_000))
    head = b'{"version":"4","groupKey":"g","status":"firing","alerts":[],"extra":'
    shape = draw(st.sampled_from(["array", "object", "in-extra", "in-labels"]))
    if shape == "array":
        return b"[" * depth + b"]" * depth
    if shape == "object":
        return b'{"a":' * depth + b"1" + b"}" * depth
    if shape == "in-extra":
        return head + b"[" * depth + b"]" * depth + b"}"
    return (
        b'{"version":"4","groupKey":"g","status":"firing","alerts":[{"status":"firing","labels":{"a":'
        + b"[" * depth
        + b"]" * depth
        + b"}}]}"
    )


# Bytes that are not UTF-8. The last two are UTF-16 surrogates encoded as if they were code points
# (CESU-8), which Python's json.loads lets through as lone surrogates.
INVALID_UTF8 = [b"\xff", b"\xfe", b"\x80", b"\xc3", b"\xc3\x28", b"\xe2\x82", b"\xf0\x28\x8c\xbc"]
INVALID_UTF8 += [b"\xc0\xaf", b"\xf8\x88\x80\x80\x80", b"\xed\xa0\x80", b"\xed\xbf\xbf"]
MARKER = "\u2603MARK\u2603"


@st.composite
def invalid_utf8(draw: st.DrawFn) -> bytes:
    """A webhook with bytes that are not UTF-8 inside a string, or anywhere."""
    payload = draw(small_webhooks)
    body = json.dumps(_with(payload, draw(st.sampled_from(SOMEWHERE)), MARKER), ensure_ascii=False).encode()
    bad = draw(st.sampled_from(INVALID_UTF8))
    if draw(st.booleans()):
        return body.replace(MARKER.encode(), bad)
    at = draw(st.integers(0, len(body)))
    return body[:at] + bad + body[at:]


@st.composite
def lone_surrogates(draw: st.DrawFn) -> bytes:
    r"""A webhook with a `\udXXX` escape that is half a surrogate pair: valid JSON syntax,
    but no Unicode text (Go's encoder never writes one)."""
    payload = draw(small_webhooks)
    surrogate = draw(st.sampled_from(["\\ud800", "\\udfff", "\\udbff", "x\\ud83d"]))
    body = json.dumps(_with(payload, draw(st.sampled_from(SOMEWHERE)), MARKER)).encode()
    return body.replace(json.dumps(MARKER).encode()[1:-1], surrogate.encode())


# Timestamps pydantic accepts that Alertmanager never writes: naive, date-only, unix seconds.
ODD_TIMESTAMPS: list[JsonValue] = [
    "2026-11-24T06:02:41",
    "2026-11-24T06:02:41.123456789",
    "2026-11-24",
    "2026-11-24T06:02:41Z",
    "2026-11-24T06:02:41+05:30",
    1_795_500_262,
    1_795_500_262.5,
    "1795500262",
    "0",
    "",
    None,
    GO_ZERO_TIME,
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
]


@st.composite
def odd_timestamps(draw: st.DrawFn) -> bytes:
    payload = copy.deepcopy(draw(medium_webhooks))
    for alert in payload["alerts"]:
        for name in ("startsAt", "endsAt"):
            if draw(st.booleans()):
                alert[name] = draw(st.sampled_from(ODD_TIMESTAMPS))
    return json.dumps(payload).encode()


@st.composite
def other_encodings(draw: st.DrawFn) -> bytes:
    """A webhook in UTF-16/32 or with a BOM (json.loads guesses the encoding of bytes)."""
    text = json.dumps(draw(small_webhooks), ensure_ascii=False)
    return text.encode(draw(st.sampled_from(["utf-8-sig", "utf-16", "utf-16-le", "utf-32", "utf-32-be"])))


@st.composite
def truncated(draw: st.DrawFn) -> bytes:
    body = draw(small_webhook_bodies)
    return body[: draw(st.integers(0, len(body) - 1))]


def hostile_bodies() -> st.SearchStrategy[bytes]:
    """Everything but a valid webhook (some of them are valid webhooks all the same)."""
    return st.one_of(
        json_values.flatmap(serialised),
        broken_webhooks().flatmap(lambda broken: serialised(broken[0])),
        small_webhooks.map(lambda p: {**p, "version": None}).flatmap(serialised),
        huge_values(),
        huge_numbers(),
        deep_nesting(),
        invalid_utf8(),
        lone_surrogates(),
        odd_timestamps(),
        other_encodings(),
        truncated(),
        st.binary(max_size=300),
        st.text(max_size=100).map(str.encode),
    )


def any_bodies() -> st.SearchStrategy[bytes]:
    return st.one_of(webhook_bodies(), hostile_bodies())


# --- requests to POST /alerts ----------------------------------------------------------------

TOKEN = "t"
BASIC_USER, BASIC_PASSWORD = "am", "pw"
_printable = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30)


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@st.composite
def weighted(draw: st.DrawFn, *choices: tuple[int, st.SearchStrategy[Any]]) -> Any:
    """One of `choices` (weight, strategy), by weight; shrinks towards the first."""
    pick = draw(st.integers(0, sum(weight for weight, _ in choices) - 1))
    for weight, strategy in choices:
        if pick < weight:
            return draw(strategy)
        pick -= weight
    raise AssertionError("unreachable")


# Three in four requests carry the right credentials, as Alertmanager's `authorization` or
# `basic_auth` send them (or in another spelling the scheme allows).
right_authorizations = st.sampled_from(
    [f"Bearer {TOKEN}", f"bearer {TOKEN}", f"BEARER  {TOKEN} ", _basic(BASIC_USER, BASIC_PASSWORD)]
)
wrong_authorizations = st.one_of(
    st.sampled_from(
        [
            None,
            "",
            "Bearer",
            "Bearer ",
            f"Bearer {TOKEN}x",
            f"Bearer x{TOKEN}",
            f"Token {TOKEN}",
            TOKEN,
            f"Bearer\t{TOKEN}",
            _basic(BASIC_USER, "wrong"),
            _basic("wrong", BASIC_PASSWORD),
            _basic(BASIC_USER, ""),
            "Basic !!!",
            "Basic " + base64.b64encode(b"\xff\xfe:pw").decode(),
            b"Bearer \xff",
            b"Basic \xe9\xe9",
        ]
    ),
    _printable,
    _printable.map(lambda s: f"Bearer {s}"),
    st.tuples(_printable, _printable).map(lambda up: _basic(*up)),
)
authorizations: st.SearchStrategy[str | bytes | None] = weighted(
    (3, right_authorizations), (1, wrong_authorizations)
)
# Most requests say JSON as Alertmanager does (or say nothing); some say something else.
content_types: st.SearchStrategy[str | None] = weighted(
    (4, st.sampled_from([None, "application/json", "application/json; charset=utf-8"])),
    (
        1,
        st.one_of(
            st.sampled_from(
                [
                    "",
                    ";",
                    "Application/JSON",
                    "text/json",
                    "application/vnd.alertmanager+json",
                    " application/json ;charset=latin-1",
                    "text/plain",
                    "application/x-www-form-urlencoded",
                    "multipart/form-data; boundary=x",
                    "application/jsonx",
                    "json",
                    "application/json-patch",
                ]
            ),
            _printable,
        ),
    ),
)

Framing = Literal["length", "chunked", "declared"]


@dataclass(frozen=True)
class AlertsRequest:
    """One `POST /alerts`, sent `copies` times at once."""

    body: bytes
    authorization: str | bytes | None
    content_type: str | None
    framing: Framing  # Content-Length from httpx, chunked (no length), or a given Content-Length
    declared_length: str = ""
    chunk_size: int = 1024
    copies: int = 1

    def __repr__(self) -> str:  # bodies can be 400 kB: keep falsifying examples readable
        body = self.body
        if len(body) > 2000:
            body = body[:1200] + b"...(%d bytes in all)..." % len(body) + body[-400:]
        return (
            f"AlertsRequest(body={body!r}, authorization={self.authorization!r}, "
            f"content_type={self.content_type!r}, framing={self.framing!r}, "
            f"declared_length={self.declared_length!r}, chunk_size={self.chunk_size}, copies={self.copies})"
        )

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # how hypothesis prints examples
        printer.text(repr(self))


@st.composite
def padded_to_limit(draw: st.DrawFn, limit: int) -> bytes:
    """A valid webhook padded with whitespace to a few bytes below, at or above `limit`."""
    body = json.dumps(draw(medium_webhooks), separators=(",", ":")).encode()
    target = limit + draw(st.integers(-2, 2))
    if len(body) >= target:
        return body
    return body[:-1] + b" " * (target - len(body)) + b"}"


def alerts_requests(limit: int, replays: list[Payload]) -> st.SearchStrategy[AlertsRequest]:
    """Requests to POST /alerts: mostly authorised JSON, bodies valid, hostile, near `limit`
    and over it, and `replays` (captured webhooks) sent again and again (duplicates)."""
    bodies = weighted(
        (8, medium_webhooks.flatmap(serialised)),
        (2, st.sampled_from(replays).flatmap(serialised)),
        (2, padded_to_limit(limit)),
        (6, hostile_bodies()),
        (2, st.binary(min_size=limit - 2, max_size=limit + 2)),
    )
    return st.builds(
        AlertsRequest,
        body=bodies,
        authorization=authorizations,
        content_type=content_types,
        framing=st.sampled_from(["length", "length", "chunked", "declared"]),
        declared_length=st.one_of(
            st.integers(0, 3 * limit).map(str), st.sampled_from(["", "abc", "-1", " 12", str(limit + 1)])
        ),
        chunk_size=st.integers(256, 2 * limit),
        copies=st.sampled_from([1, 1, 1, 1, 1, 2, 3]),
    )


# --- what the properties found ------------------------------------------------------------------

# Minimal bodies on which the properties failed (product bugs, issue alert_ingest item 7): each
# must be refused with a 400/422, or accepted and published; today each raises or ends in a 5xx.
_HEAD = b'{"version":"4","groupKey":"g","status":"firing","alerts":'
FOUND: dict[str, bytes] = {
    # json.loads raises ValueError (not JSONDecodeError) past Python's 4,300-digit int limit.
    "int-over-4300-digits": b"1" + b"0" * 4300,
    # json.loads raises RecursionError past ~1,000 levels (the 1 MiB size limit allows 500,000).
    "nesting-deeper-than-the-recursion-limit": b"[" * 4_000 + b"]" * 4_000,
    # A lone surrogate (an escape, or CESU-8 bytes that json.loads lets through) is accepted,
    # then the group can be neither hashed (str.encode) nor serialised to publish it.
    "lone-surrogate-escape": b'{"version":"4","groupKey":"\\ud800","status":"firing","alerts":[]}',
    "lone-surrogate-cesu8-bytes": _HEAD + b'[{"status":"firing","labels":{"a":"\xed\xa0\x80"}}]}',
    # A naive and an aware startsAt are both accepted; earliest_start() cannot compare them.
    "naive-and-aware-starts": _HEAD
    + b'[{"status":"firing","labels":{},"startsAt":"2026-01-01T00:00:00"},'
    + b'{"status":"firing","labels":{},"startsAt":"2026-01-01T00:00:00Z"}]}',
}
