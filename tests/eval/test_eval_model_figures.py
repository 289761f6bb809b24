"""The model path's figures in `oncall eval`: model calls, prompt tokens, seconds and the claims
the evidence does not show, per incident and in the totals."""

from services.runtime.evaluation.runner import Result, Table, summary, totals_text


def results() -> list[Result]:
    common = {"kind": "exception", "language": "python", "expected": "x.py:1"}
    return [
        Result(
            name="a",
            passed=True,
            method="model",
            model_calls=2,
            prompt_tokens=3000,
            seconds=80.0,
            unverified=0,
            **common,
        ),
        Result(
            name="b",
            passed=False,
            method="model",
            model_calls=1,
            prompt_tokens=2000,
            seconds=60.0,
            unverified=2,
            **common,
        ),
    ]


def test_unverified_claims_are_a_column_and_a_total() -> None:
    lines: list[str] = []
    table = Table(model=True, out=lines.append)
    table.header()
    for result in results():
        table.row(result)
    assert lines[0].split()[-1] == "unver"
    assert lines[-1].split()[-1] == "2" and lines[-2].split()[-1] == "0"
    figures = summary(results(), model=True)
    assert figures["claims_unverified"] == 2 and figures["seconds_per_incident"] == 70.0
    assert figures["model_calls_per_incident"] == 1.5 and figures["prompt_tokens_per_incident"] == 2500
    assert "claims unverified 2" in "\n".join(totals_text(figures))


def test_the_rules_table_has_no_model_columns() -> None:
    lines: list[str] = []
    Table(model=False, out=lines.append).header()
    assert "unver" not in lines[0] and "claims_unverified" not in summary(results(), model=False)
