"""Rule-based diagnoses from realistic logs of each language, through the real log compression."""

import pytest
from diagnoser_harness import alert_group

from services.contracts.models import ToolResult
from services.contracts.tool_results import CodeWindow, CommitsResult, CommitSummary, ErrorRateResult
from services.diagnoser.evidence import Evidence, EvidenceItem
from services.diagnoser.rules import classify, rule_based_diagnosis
from services.tools.log_compression import LogEntry, compress_logs

PYTHON = (
    "Traceback (most recent call last):\n"
    '  File "/usr/lib/python3.11/site-packages/flask/app.py", line 880, in full_dispatch_request\n'
    "    rv = self.dispatch_request()\n"
    '  File "/app/inventory/inventory_service.py", line 47, in reserve_stock\n'
    '    available = entry["available"] - entry["reserved"]\n'
    "TypeError: 'NoneType' object is not subscriptable"
)
JAVA = (
    'java.lang.NullPointerException: Cannot invoke "Order.getCurrency()" because "order" is null\n'
    "\tat com.shop.checkout.PaymentService.charge(PaymentService.java:42)\n"
    "\tat com.shop.checkout.CheckoutController.post(CheckoutController.java:88)\n"
    "\tat java.base/java.lang.Thread.run(Thread.java:833)"
)
GO = (
    "panic: runtime error: index out of range [3] with length 3\n\n"
    "goroutine 17 [running]:\n"
    "main.pickWarehouse(...)\n\t/src/shipping/router.go:57 +0x1d\n"
    "main.handler(0xc000010000)\n\t/src/shipping/main.go:120 +0x85\n"
)
NODE = (
    "TypeError: Cannot read properties of undefined (reading 'price')\n"
    "    at totalOf (/srv/cart/pricing.js:23:31)\n"
    "    at Array.map (<anonymous>)\n"
    "    at handler (/srv/cart/routes.js:14:20)"
)
DOTNET = (
    "System.Collections.Generic.KeyNotFoundException: The given key 'EUR' was not present "
    "in the dictionary.\n"
    "   at Shop.Fx.RateTable.Get(String code) in /src/Shop.Fx/RateTable.cs:line 19\n"
    "   at Shop.Fx.Converter.Convert(Decimal amount) in /src/Shop.Fx/Converter.cs:line 33"
)


def evidence_for(
    *errors: str,
    code: CodeWindow | None = None,
    rate: float | None = 0.3,
    commits: list[CommitSummary] | None = None,
) -> Evidence:
    lines = [
        LogEntry(timestamp="2026-11-24T06:00:00Z", level="INFO", message=f"GET /x/{n} 200", service="s")
        for n in range(20)
    ]
    lines += [
        LogEntry(timestamp="2026-11-24T06:01:00Z", level="ERROR", message=e, service="s") for e in errors
    ]
    logs = ToolResult.success("fetch_logs", compress_logs(lines))
    rates = ToolResult.success("compute_error_rate", ErrorRateResult(error_rate=rate))
    code_item = None
    if code is not None:
        code_item = EvidenceItem(
            "fetch_code_from_github", {}, ToolResult.success("fetch_code_from_github", code)
        )
    history = None
    if commits is not None:
        found = CommitsResult(since="2026-11-17T06:00:00Z", source="git log", commits=commits)
        history = EvidenceItem("recent_commits", {}, ToolResult.success("recent_commits", found))
    return Evidence(
        EvidenceItem("fetch_logs", {}, logs),
        EvidenceItem("compute_error_rate", {}, rates),
        code_item,
        history,
    )


@pytest.mark.parametrize(
    ("trace", "file", "line", "failure"),
    [
        (PYTHON, "/app/inventory/inventory_service.py", 47, "None/null dereference"),
        (JAVA, "PaymentService.java", 42, "None/null dereference"),
        (GO, "/src/shipping/router.go", 57, "index out of range"),
        (NODE, "/srv/cart/pricing.js", 23, "None/null dereference"),
        (DOTNET, "/src/Shop.Fx/RateTable.cs", 19, "missing key"),
    ],
)
def test_each_language_names_the_failing_frame_and_the_failure_class(
    trace: str, file: str, line: int, failure: str
) -> None:
    diagnosis = rule_based_diagnosis(alert_group(), evidence_for(trace, trace, trace))
    assert diagnosis.method == "rules"
    assert diagnosis.affected_file is not None and diagnosis.affected_file.endswith(file.split("/")[-1])
    assert diagnosis.line == line
    fc = classify(trace)
    assert fc is not None and fc.name == failure
    assert fc.explanation in diagnosis.root_cause and diagnosis.suggested_fix.startswith(fc.fix.split(".")[0])
    assert diagnosis.priority == "P1"  # critical alert, 30% errors


def code_window(line: int = 47) -> CodeWindow:
    return CodeWindow(
        path="inventory/inventory_service.py",
        ref="main",
        line=line,
        total_lines=48,
        lines=[(46, "    entry = CACHE.get(sku)"), (47, '    available = entry["available"]'), (48, "")],
    )


def test_the_repository_path_of_the_code_window_wins_over_the_container_path() -> None:
    code = code_window()
    diagnosis = rule_based_diagnosis(alert_group(), evidence_for(PYTHON, code=code))
    assert diagnosis.affected_file == "inventory/inventory_service.py" and diagnosis.line == 47
    assert 'available = entry["available"]' in diagnosis.suggested_fix


@pytest.mark.parametrize(
    ("message", "failure"),
    [
        ("upstream request timed out after 5000ms calling payments", "timeout"),
        ("dial tcp 10.0.0.7:5432: connect: connection refused", "connection refused"),
        ("java.lang.OutOfMemoryError: Java heap space", "out of memory"),
        ("write /var/lib/data/seg-001: No space left on device", "disk full"),
        ("open /etc/app/cert.pem: permission denied", "permission denied"),
        ("KeyError: 'DATABASE_URL'", "missing configuration"),
    ],
)
def test_known_failure_classes_without_a_stack_trace(message: str, failure: str) -> None:
    diagnosis = rule_based_diagnosis(alert_group(), evidence_for(message))
    fc = classify(message)
    assert fc is not None and fc.name == failure
    assert fc.explanation in diagnosis.root_cause
    assert diagnosis.affected_file is None and diagnosis.line is None


def test_no_errors_in_the_logs_says_what_was_checked_with_low_confidence() -> None:
    diagnosis = rule_based_diagnosis(alert_group(), evidence_for(rate=None))
    assert diagnosis.root_cause.startswith("No cause found for HighErrorRate on checkout")
    assert (
        "Checked: the logs of checkout from 06:00:00 to 06:00:00 (20 lines: 20 INFO" in diagnosis.root_cause
    )
    assert "the error rate in Prometheus: no data" in diagnosis.root_cause
    assert diagnosis.confidence <= 0.3 and diagnosis.priority == "P1"


def test_the_latest_change_to_the_failing_file_is_named() -> None:
    commit = CommitSummary(
        sha="4f2a9c1e7b3d",
        author="Dana (@dana)",
        date="2026-11-24T05:40:00Z",
        title="Serve new SKUs from the warm cache",
    )
    code = code_window()
    diagnosis = rule_based_diagnosis(alert_group(), evidence_for(PYTHON, code=code, commits=[commit]))
    assert any("4f2a9c1e7b3d by Dana (@dana)" in line for line in diagnosis.evidence)
    assert any("Review commit 4f2a9c1e7b3d" in step for step in diagnosis.next_steps)
