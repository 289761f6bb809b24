"""The diagnosis is declared once: `Diagnosis` is the model's `send_diagnosis` arguments plus how
it was made, and the schema the model is given is the arguments' alone."""

import json

import pytest

from services.contracts import tools
from services.contracts.models import Diagnosis, SendDiagnosisArgs
from services.diagnoser.investigation import parse_diagnosis
from services.diagnoser.model import ModelError

ARGS = {
    "root_cause": "Orders without currency",
    "affected_file": "checkout/payments.py",
    "line": 31,
    "evidence": ["KeyError: 'currency'"],
    "priority": "P1",
    "suggested_fix": "default the currency",
    "next_steps": ["fix"],
    "confidence": 0.8,
}


def test_a_diagnosis_is_the_send_diagnosis_arguments_and_how_it_was_made() -> None:
    assert tools.SEND_DIAGNOSIS.args_model is SendDiagnosisArgs
    assert issubclass(Diagnosis, SendDiagnosisArgs)
    # How it was made: by the model (which one, and its claims the evidence does not show) or the rules.
    made = {"method", "fallback_reason", "model", "unverified", "rules_view"}
    assert set(Diagnosis.model_fields) - set(SendDiagnosisArgs.model_fields) == made
    diagnosis = parse_diagnosis(json.dumps(ARGS))
    assert diagnosis.model_dump() == {
        **ARGS,
        "method": "model",
        "fallback_reason": None,
        "model": None,
        "unverified": [],
        "rules_view": None,
    }


def test_the_model_must_give_what_a_rule_based_diagnosis_may_leave_out() -> None:
    parameters = tools.openai_tool(tools.SEND_DIAGNOSIS)["function"]["parameters"]
    assert parameters["required"] == ["root_cause", "priority", "suggested_fix", "confidence"]
    assert "description" not in parameters and "title" not in parameters
    assert list(parameters["properties"]) == list(ARGS)
    with pytest.raises(ModelError, match="Field required"):
        parse_diagnosis(json.dumps({"root_cause": "x"}))

    defaults = Diagnosis(root_cause="x", method="rules")
    assert (defaults.priority, defaults.suggested_fix, defaults.confidence) == ("P2", "", 0.5)
    schema = Diagnosis.model_json_schema()
    assert schema["required"] == ["root_cause"]
    assert schema["properties"]["priority"]["default"] == "P2"


def test_the_tools_are_offered_in_few_tokens_and_take_the_same_arguments() -> None:
    """A CPU model reads every tool schema before each new prompt: no generated titles, and an
    optional field given as its type alone; leaving it out, or sending null, still parses."""
    offered = json.dumps(tools.human_turn_tools() + tools.diagnosis_tools())
    assert '"title"' not in offered and '{"type": "null"}' not in offered
    commits = tools.openai_tool(tools.RECENT_COMMITS)["function"]["parameters"]["properties"]
    assert commits["path"] == {
        "type": "string",
        "description": "File or directory, e.g. the file of a stack frame; default: everything",
    }
    assert tools.RECENT_COMMITS.args_model.model_validate({}).path is None
    assert tools.RECENT_COMMITS.args_model.model_validate({"path": None}).path is None
    # A property named "title" is a field, not a generated title: it stays.
    nested = {"properties": {"title": {"title": "Title", "type": "string"}}, "title": "Args"}
    assert tools.compact_schema(nested) == {"properties": {"title": {"type": "string"}}}
