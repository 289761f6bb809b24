"""Where the tests' fixture files live: all inside the repository, under tests/fixtures/.

- alertmanager/: webhooks and a silence request as Alertmanager really sends them.
- jira/: the part of Atlassian's Jira Cloud REST v3 OpenAPI document the product uses (see its README).
"""

from pathlib import Path

FIXTURES_DIR = Path(__file__).resolve().parents[1] / "fixtures"
ALERTMANAGER_FIXTURES = FIXTURES_DIR / "alertmanager"
JIRA_FIXTURES = FIXTURES_DIR / "jira"
