"""`oncall up`'s intake process answers /metrics for both processes: one family per name, the
samples of both added up."""

from prometheus_client.parser import text_string_to_metric_families

from services.runtime.intake_process import forward_headers, merged_exposition

INTAKE = """# HELP oncall_kv_operations_total KV operations
# TYPE oncall_kv_operations_total counter
oncall_kv_operations_total{bucket="oncall_groups",op="create"} 3.0
oncall_kv_operations_created{bucket="oncall_groups",op="create"} 100.0
# HELP oncall_ingest_webhooks_total webhooks
# TYPE oncall_ingest_webhooks_total counter
oncall_ingest_webhooks_total{outcome="accepted"} 3.0
"""
SERVICES = """# HELP oncall_kv_operations_total KV operations
# TYPE oncall_kv_operations_total counter
oncall_kv_operations_total{bucket="oncall_groups",op="create"} 2.0
oncall_kv_operations_created{bucket="oncall_groups",op="create"} 200.0
oncall_kv_operations_total{bucket="oncall_conversations",op="get"} 5.0
"""


def test_metrics_of_both_processes_are_one_exposition() -> None:
    text = merged_exposition([INTAKE, SERVICES]).decode()
    assert text.count("# TYPE oncall_kv_operations_total counter") == 1
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    groups = (("bucket", "oncall_groups"), ("op", "create"))
    assert samples[("oncall_kv_operations_total", groups)] == 5.0
    assert samples[("oncall_kv_operations_created", groups)] == 200.0  # a time: the latest
    assert samples[("oncall_kv_operations_total", (("bucket", "oncall_conversations"), ("op", "get")))] == 5.0
    assert samples[("oncall_ingest_webhooks_total", (("outcome", "accepted"),))] == 3.0


def test_hop_headers_are_not_forwarded() -> None:
    given = [("Host", "a"), ("X-Twilio-Signature", "s"), ("Content-Length", "3"), ("Connection", "close")]
    assert forward_headers(given) == [("X-Twilio-Signature", "s")]
