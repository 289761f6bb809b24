"""The fault campaign's short version (issue 15): each kill point 3 times, 2,000 fuzzed requests and
a 1,000-alert storm against the five services as `oncall run` processes on one nats-server. Every
row must pass every run, with no message or issue sent twice and none lost. The long version:
`python -m bench.faults`."""

from pathlib import Path

import pytest

from tests.faults.campaign import SHORT, run, table


@pytest.mark.timeout(600)
def test_the_short_campaign_loses_nothing_and_sends_nothing_twice(tmp_path: Path) -> None:
    rows, figures = run(SHORT, tmp_path, progress=lambda line: None)

    print("\n" + table(rows))
    assert figures is not None and figures.incidents == SHORT.storm_groups
    assert figures.investigations == SHORT.storm_groups  # one per incident, not one per webhook
    assert figures.diagnoses_published == SHORT.storm_groups
    failed = [row.name for row in rows if not row.ok]
    assert not failed, table(rows)
