"""The fault campaign's long version (issue 15): each kill point 20 times, 10,000 fuzzed requests,
the 10,000-alert storm in 100 groups and 10 nats-server restarts, against the five services as
`oncall run` processes on one nats-server with the vendor fakes; one table row per kill point
with runs, passes, duplicates and losses, then the storm's figures.

    .venv/bin/python -m bench.faults                      # the long table (about half an hour)
    .venv/bin/python -m bench.faults --runs 3 --fuzz 2000 --storm 1000 --restarts 3   # the CI size
    .venv/bin/python -m bench.faults --only notifier-twilio-send,nats-restart

The short version runs in CI as tests/faults/test_faults.py. Every phase is bounded (a run that
does not finish within its wait counts as a loss), and every process the campaign starts is
ended by it, also on Ctrl-C or SIGTERM.
"""

import argparse
import signal
import sys
import tempfile
import time
from pathlib import Path

from tests.faults.campaign import LONG, Plan, run, table

POINTS = (
    "notifier-twilio-send",
    "ticketing-jira-create",
    "diagnoser-mid-incident",
    "twilio-slow",
    "jira-slow-create",
    "nats-restart",
    "fuzz",
    "storm",
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=LONG.kill_runs, help="runs of each kill point")
    parser.add_argument("--fuzz", type=int, default=LONG.fuzz_requests, help="fuzzed requests")
    parser.add_argument("--storm", type=int, default=LONG.storm_alerts, help="alerts in the storm")
    parser.add_argument("--groups", type=int, default=LONG.storm_groups, help="groups in the storm")
    parser.add_argument("--restarts", type=int, default=LONG.nats_restarts, help="nats-server restarts")
    parser.add_argument("--only", default="", help=f"comma-separated rows among: {', '.join(POINTS)}")
    parser.add_argument("--workdir", type=Path, default=None, help="logs and stores (default: a temp dir)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    # SIGTERM ends the campaign like Ctrl-C: its processes are ended on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    plan = Plan(args.runs, args.fuzz, args.storm, args.groups, args.restarts)
    only = {name.strip() for name in args.only.split(",") if name.strip()} or None
    unknown = (only or set()) - set(POINTS)
    if unknown:
        sys.exit(f"unknown rows: {', '.join(sorted(unknown))}")
    started = time.monotonic()

    def progress(line: str) -> None:
        print(f"[{time.monotonic() - started:6.0f}s] {line}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="oncall-faults-") as temp:
        workdir = args.workdir or Path(temp)
        rows, storm = run(plan, workdir, only, progress)
    print(table(rows))
    if storm is not None:
        print(
            f"\nstorm: {storm.alerts} alerts in {storm.groups} groups -> {storm.incidents} incidents, "
            f"{storm.investigations} investigations, {storm.diagnoses_published:.0f} diagnoses published, "
            f"{storm.messages} WhatsApp messages, drained in {storm.seconds:.0f} s"
        )
    print(f"\ncampaign: {time.monotonic() - started:.0f} s")
    sys.exit(0 if all(row.ok for row in rows) else 1)


if __name__ == "__main__":
    main()
