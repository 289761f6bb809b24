"""`oncall eval`'s scoring on hand-made messages: required fragments (with alternatives), forbidden
fragments in the first 300 characters, max_confidence, confident-wrong, what the message said first."""

from services.runtime.evaluation.scenarios import Expect
from services.runtime.evaluation.scoring import CONFIDENT, FORBIDDEN_WINDOW, said_first, score


def expect(
    required: list[str | list[str]],
    forbidden: list[str] | None = None,
    max_confidence: float | None = None,
    error_class: str | None = None,
) -> Expect:
    return Expect(
        summary="test",
        required=tuple(tuple(r) if isinstance(r, list) else (r,) for r in required),
        forbidden=tuple(forbidden or ()),
        error_class=error_class,
        max_confidence=max_confidence,
        location=None,
    )


MESSAGE = """🚨 *Incident diagnosis* #a1b2c3
*HighErrorRate on cart*
*Priority:* P2 · *Severity:* critical

*Root cause:*
java.lang.NullPointerException at src/main/java/com/shop/Cart.java:57 in com.shop.Cart.total()

*File:* `src/main/java/com/shop/Cart.java:57`
"""


def test_all_required_fragments_present_is_a_pass_case_insensitively() -> None:
    judged = score(MESSAGE, expect(["SRC/MAIN/JAVA/COM/SHOP/CART.JAVA:57", "nullpointerexception"]), 0.7)
    assert judged.passed and not judged.confident_wrong and judged.why() == ""


def test_a_list_of_alternatives_is_satisfied_by_any_one() -> None:
    assert score(MESSAGE, expect([["Cart.java line 57", "Cart.java:57"]]), 0.4).passed
    judged = score(MESSAGE, expect([["Cart.java line 57", "Cart.kt:57"]]), 0.4)
    assert not judged.passed and judged.missing == ("Cart.java line 57 | Cart.kt:57",)


def test_a_missing_fragment_fails_and_is_confident_wrong_from_the_threshold_on() -> None:
    fails = expect(["payments-gateway"])
    assert score(MESSAGE, fails, CONFIDENT).confident_wrong
    assert score(MESSAGE, fails, 0.95).confident_wrong
    assert not score(MESSAGE, fails, CONFIDENT - 0.01).confident_wrong
    assert not score(MESSAGE, fails, None).confident_wrong  # no diagnosis event: unknown, not counted
    assert "missing 'payments-gateway'" in score(MESSAGE, fails, 0.9).why()


def test_a_forbidden_fragment_fails_only_in_the_first_300_characters() -> None:
    assert len(MESSAGE) < FORBIDDEN_WINDOW
    red_herring = expect(["Cart.java:57"], forbidden=["HighErrorRate on cart"])
    judged = score(MESSAGE, red_herring, 0.7)
    assert not judged.passed and judged.confident_wrong
    assert judged.forbidden_found == ("HighErrorRate on cart",)
    # The same words after the first 300 characters (said, e.g., as a ruled-out lead) are allowed.
    later = MESSAGE + "x" * FORBIDDEN_WINDOW + "\nNot the cause: fx-feed refresh errors (an hour old)."
    assert score(later, expect(["Cart.java:57"], forbidden=["fx-feed"]), 0.7).passed
    # A fragment straddling the boundary is not within the first 300 characters.
    straddling = "a" * (FORBIDDEN_WINDOW - 3) + "fx-feed Cart.java:57"
    assert score(straddling, expect(["Cart.java:57"], forbidden=["fx-feed"]), 0.7).passed


def test_more_confident_than_allowed_fails() -> None:
    quiet = expect(["Cart.java:57"], max_confidence=0.5)
    assert score(MESSAGE, quiet, 0.5).passed
    judged = score(MESSAGE, quiet, 0.7)
    assert not judged.passed and judged.overconfident and judged.confident_wrong
    assert judged.why() == "too confident"


def test_an_empty_message_never_passes() -> None:
    assert not score("", expect(["a"]), None).passed


def test_the_error_class_is_reported_not_scored() -> None:
    judged = score(MESSAGE, expect(["Cart.java:57"], error_class="IllegalStateException"), 0.7)
    assert judged.passed and judged.error_class_named is False
    assert score(MESSAGE, expect(["Cart.java:57"], error_class="NullPointerException"), 0.7).error_class_named
    assert score(MESSAGE, expect(["Cart.java:57"]), 0.7).error_class_named is None


def test_what_the_message_said_first() -> None:
    assert said_first(MESSAGE, "#a1b2c3").startswith("java.lang.NullPointerException at src/main")
    inline = "🚨 Incident #a1b2c3\n*Root cause:* the payments-gateway timed out\nmore"
    assert said_first(inline, "#a1b2c3") == "the payments-gateway timed out"
    plain = (
        "🚨 Incident #a1b2c3\n*HighErrorRate on cart*\n*Priority:* P2\nThe cart's Redis refuses connections."
    )
    assert said_first(plain, "#a1b2c3") == "The cart's Redis refuses connections."
    assert said_first("") == ""
