"""What counts as feedback on a diagnosis (a whole reply), and the flapping window's units."""

import pytest

from services.diagnoser.feedback import parse
from services.diagnoser.flapping import parse_window


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("right", ("right", None)),
        ("Right!", ("right", None)),
        ("👍", ("right", None)),
        ("👍🏽", ("right", None)),
        ("#a1b2c3 correct", ("right", None)),
        ("wrong", ("wrong", None)),
        ("👎", ("wrong", None)),
        ("wrong: the cause was a bad deploy of pricing", ("wrong", "a bad deploy of pricing")),
        ("Wrong - root cause is the DNS change.", ("wrong", "the DNS change")),
        ("wrong, it was the cache", ("wrong", "it was the cache")),
    ],
)
def test_feedback_replies(text: str, expected: tuple[str, str | None]) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize(
    "text", ["create the ticket right away", "status", "what went wrong?", "is this right or wrong"]
)
def test_other_replies_are_not_feedback(text: str) -> None:
    assert parse(text) is None


@pytest.mark.parametrize(
    ("text", "seconds"), [("1h", 3600), ("30m", 1800), ("90s", 90), ("600", 600), ("2d", 172800)]
)
def test_flap_window_units(text: str, seconds: float) -> None:
    assert parse_window(text) == seconds


@pytest.mark.parametrize("text", ["soon", "0", "-5m", "1 week"])
def test_a_bad_flap_window_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_window(text)
