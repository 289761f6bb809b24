"""The `oncall` command: up (local mode), run <service>, demo, reply, replay, inspect."""

import argparse
import asyncio
import contextlib
import logging
import os
import re
import sys
from collections.abc import Coroutine, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from pydantic import ValidationError

from services.contracts import streams
from services.contracts.settings import OnCallPeople
from services.runtime import stats, timeline
from services.runtime.broker import FASTSTREAM_LOGGER, NatsUnreachable, check_reachable
from services.runtime.credentials import mask_credentials
from services.runtime.data_dir import DataDirBusy, StaleLocalState, read_local_state
from services.runtime.embedded_nats import NatsServerError
from services.runtime.host import Host, HttpServerError
from services.runtime.intake_process import INTAKE_SERVICE
from services.runtime.local import run_demo, send_reply
from services.runtime.observability import configure_logging
from services.runtime.operate import Selection, describe, read_conversation, replay
from services.runtime.service import Configured, SettingsInvalid, configure, service_names
from services.runtime.settings import ProcessSettings
from services.runtime.times import assume_utc

T = TypeVar("T")


class OneLineErrors(argparse.ArgumentParser):
    """A usage mistake is one line and exit code 2 (`oncall replay: --seq: ...`), not the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def sequence_range(text: str) -> tuple[int, int]:
    """`15` or `10-20`."""
    first, _, last = text.partition("-")
    try:
        low, high = int(first), int(last or first)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a sequence number or range such as 42 or 10-20"
        ) from None
    if low < 1 or high < low:
        raise argparse.ArgumentTypeError(f"{text!r}: sequences start at 1 and a range goes low-high")
    return low, high


def iso_time(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 time such as 2026-11-24T06:00"
        ) from None


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrors(prog="oncall", description="AI on-call agent")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineErrors)

    def with_host_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--http-port", type=int, help="HTTP port (ONCALL_HTTP_PORT, default 8080; 0 = any)")
        sub.add_argument("--data-dir", type=Path, help="state directory (ONCALL_DATA_DIR, default ./.oncall)")

    up = commands.add_parser("up", help="local mode: all the services in one process")
    with_host_options(up)
    run = commands.add_parser("run", help="one service alone against NATS_URL (as on Kubernetes)")
    run.add_argument("service", choices=service_names())
    with_host_options(run)
    # `oncall up`'s intake process (intake_process.py): the inherited public socket, and the
    # process it forwards the other routes to. Not for people.
    run.add_argument("--listen-fd", type=int, help=argparse.SUPPRESS)
    run.add_argument("--upstream", help=argparse.SUPPRESS)
    demo = commands.add_parser("demo", help="local mode plus a demo incident")
    with_host_options(demo)
    demo.add_argument("--once", action="store_true", help="stop after the diagnosis is shown")
    reply = commands.add_parser("reply", help="answer as the on-call person (console channel)")
    reply.add_argument("text")
    reply.add_argument("--incident", help="incident id (default: the newest open incident)")
    reply.add_argument("--wait", type=float, default=30.0, help="seconds to wait for answers")
    reply.add_argument("--data-dir", type=Path)

    replay = commands.add_parser(
        "replay", help="re-publish stored messages (no second WhatsApp unless --force)"
    )
    replay.add_argument(
        "--stream",
        default=streams.ALERTS.name,
        choices=[spec.name for spec in streams.ALL_STREAMS],
        help="stream (default ONCALL_ALERTS); ONCALL_DLQ re-publishes dead letters to their original subject",
    )
    replay.add_argument("--seq", type=sequence_range, help="sequence range, e.g. 10-20 or 15")
    replay.add_argument("--since", type=iso_time, help="stored at or after (ISO 8601)")
    replay.add_argument("--until", type=iso_time, help="stored at or before (ISO 8601)")
    replay.add_argument("--incident", help="only messages of this incident")
    replay.add_argument("--subject", help="only messages on this subject")
    replay.add_argument("--dry-run", action="store_true", help="list what would be re-published")
    replay.add_argument("--force", action="store_true", help="investigate again, and tell the humans again")
    replay.add_argument("--data-dir", type=Path)
    commands.add_parser("asyncapi", help="print the AsyncAPI document of the bus (JSON)")
    inspect = commands.add_parser("inspect", help="show an incident's conversation from KV")
    inspect.add_argument("incident")
    inspect.add_argument("--json", action="store_true", help="the raw KV value")
    inspect.add_argument(
        "--timeline", action="store_true", help="fired, diagnosed, replies, actions, resolved"
    )
    inspect.add_argument("--data-dir", type=Path)
    period = commands.add_parser("stats", help="incidents, model/rules, feedback, tickets over a period")
    period.add_argument("--since", default="7d", help="7d, 24h, 2w, or an ISO date (default 7d)")
    period.add_argument("--until", help="an ISO date (default now)")
    period.add_argument("--data-dir", type=Path)
    commands.add_parser("eval", help="run the evaluation scenarios (eval/scenarios); see oncall eval --help")
    return parser


def as_utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else assume_utc(moment)


def nats_url_for(settings: ProcessSettings) -> str | None:
    """NATS_URL, or the embedded server of a local `oncall up` in this data dir."""
    if settings.nats_url:
        return settings.nats_url
    state = read_local_state(settings.data_dir)
    return state["nats_url"] if state else None


async def run_replay(settings: ProcessSettings, args: argparse.Namespace) -> int:
    url = nats_url_for(settings)
    if url is None:
        print("oncall replay: set NATS_URL (or run it beside a local `oncall up`)", file=sys.stderr)
        return 2
    await check_reachable(url)
    first, last = args.seq or (None, None)
    selection = Selection(
        stream=args.stream,
        first_seq=first,
        last_seq=last,
        since=as_utc(args.since),
        until=as_utc(args.until),
        incident=args.incident,
        subject=args.subject,
    )
    messages = await replay(url, selection, force=args.force, dry_run=args.dry_run)
    verb = "would re-publish" if args.dry_run else "re-published"
    for message in messages:
        stamp = f"{message.time:%Y-%m-%d %H:%M:%S}" if message.time else "?"
        reason = f" reason={message.dead_letter_reason!r}" if message.dead_letter_reason else ""
        target = f" -> {message.replay_subject}" if message.replay_subject != message.subject else ""
        print(
            f"{args.stream} #{message.seq} {stamp} {message.subject}{target} "
            f"incident={message.incident_id}{reason}"
        )
    print(f"{verb} {len(messages)} message(s)" + (" with force" if args.force and not args.dry_run else ""))
    return 0


async def run_inspect(settings: ProcessSettings, args: argparse.Namespace) -> int:
    url = nats_url_for(settings)
    if url is None:
        print("oncall inspect: set NATS_URL (or run it beside a local `oncall up`)", file=sys.stderr)
        return 2
    await check_reachable(url)
    conversation = await read_conversation(url, args.incident.lstrip("#"))
    if conversation is None:
        print(f"no incident {args.incident}", file=sys.stderr)
        return 1
    if args.timeline:
        print("\n".join(timeline.render(timeline.timeline_of(conversation))))
        return 0
    print(conversation.model_dump_json(indent=1) if args.json else describe(conversation))
    return 0


async def run_stats(settings: ProcessSettings, args: argparse.Namespace) -> int:
    url = nats_url_for(settings)
    if url is None:
        print("oncall stats: set NATS_URL (or run it beside a local `oncall up`)", file=sys.stderr)
        return 2
    now = datetime.now(UTC)
    try:
        since = stats.period_start(args.since, now)
        until = stats.period_start(args.until, now) if args.until else now
    except ValueError:
        print(f"oncall stats: not a period: {args.since!r} (7d, 24h, 2w, or an ISO date)", file=sys.stderr)
        return 2
    await check_reachable(url)
    print(stats.render(stats.compute(await stats.read_conversations(url), since, until)))
    return 0


def port_chosen(args: argparse.Namespace) -> bool:
    """Whether the person picked the HTTP port (flag or variable), rather than the default."""
    return args.http_port is not None or "ONCALL_HTTP_PORT" in os.environ


def load_settings(args: argparse.Namespace) -> ProcessSettings:
    settings = ProcessSettings()
    updates: dict[str, object] = {}
    if getattr(args, "http_port", None) is not None:
        updates["http_port"] = args.http_port
    if getattr(args, "data_dir", None) is not None:
        updates["data_dir"] = args.data_dir
    return settings.model_copy(update=updates)


def settings_error(exc: ValidationError) -> str:
    """One line per wrong variable, named as the person set it; secret values never shown."""
    lines = []
    for error in exc.errors():
        variable = ".".join(str(part) for part in error.get("loc", ())) or "settings"
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        shown = "" if SECRET_NAME.search(variable) else f" (got {error.get('input')!r})"
        lines.append(f"oncall: {variable}: {message}{shown if 'input' in error else ''}")
    return mask_credentials("\n".join(lines))


SECRET_NAME = re.compile(r"TOKEN|PASSWORD|SECRET|KEY", re.IGNORECASE)


def configure_all(names: Sequence[str]) -> list[Configured[Any]]:
    """Each service's settings; every wrong variable of every one of them reported at once."""
    configured: list[Configured[Any]] = []
    errors: list[str] = []
    for name in names:
        try:
            configured += configure([name])
        except SettingsInvalid as exc:
            errors += [line for line in settings_error(exc.error).splitlines() if line not in errors]
    if errors:
        raise SettingsReported("\n".join(errors))
    return configured


class SettingsReported(Exception):
    """Wrong settings, already said in one line each."""


def reply_sender() -> str:
    """Whom `oncall reply` speaks as: the first on-call number (the console channel's person)."""
    try:
        numbers = OnCallPeople().user_whatsapp_numbers
    except ValidationError as exc:
        raise SettingsInvalid(exc) from exc
    return numbers[0] if numbers else "console"


def run_async(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run, except that a task ignoring cancellation at exit (a client reconnecting to a NATS
    that is gone) cannot hang the stop: leftovers get LEFTOVER_SECONDS, then we exit anyway."""
    loop = new_event_loop()
    try:
        return loop.run_until_complete(main)
    finally:
        leftovers = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in leftovers:
            task.cancel()
        if leftovers:
            _, pending = loop.run_until_complete(asyncio.wait(leftovers, timeout=LEFTOVER_SECONDS))
            if pending:
                logging.getLogger("oncall").warning(
                    "%d task(s) did not stop within %.0f s; exiting anyway",
                    len(pending),
                    LEFTOVER_SECONDS,
                )
                logging.shutdown()
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(1)
        with contextlib.suppress(Exception):
            loop.run_until_complete(asyncio.wait_for(loop.shutdown_asyncgens(), LEFTOVER_SECONDS))
        loop.close()


LEFTOVER_SECONDS = 3.0


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's where it is installed (not on Windows): it about halves the cost of every socket
    read and write, HTTP and NATS alike (bench/profiles/README.md); asyncio's otherwise."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    if words[:1] == ["eval"]:  # the evaluation suite reads its own options
        from services.runtime.evaluation.command import main as evaluate

        return evaluate(words[1:])
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args)
    except ValidationError as exc:
        print(settings_error(exc), file=sys.stderr)
        return 2
    # The demo prints its own story; keep the logs to warnings there.
    quiet = args.command in ("demo", "reply", "replay", "inspect", "stats")
    # `asyncapi` wires every service only to describe it: their start-up warnings are not news.
    level = "ERROR" if args.command == "asyncapi" else "WARNING" if quiet else settings.log_level
    configure_logging(level, settings.log_format)
    if level.upper() != "DEBUG":
        FASTSTREAM_LOGGER.setLevel(logging.WARNING)
    names = {"up": service_names(), "run": [getattr(args, "service", "")]}.get(args.command, ())
    if args.command == "run" and not settings.nats_url:
        print("oncall run: NATS_URL is required (use `oncall up` for local mode)", file=sys.stderr)
        return 2
    try:
        hosted = configure_all(names)
    except SettingsReported as exc:
        print(exc, file=sys.stderr)
        return 2
    refusal = next((reason for service in hosted if (reason := service.refusal())), None)
    if refusal:
        print(refusal, file=sys.stderr)
        return 2
    try:
        if args.command == "up" and INTAKE_SERVICE in service_names():
            others = [service for service in hosted if service.name != INTAKE_SERVICE]
            run_async(Host(settings, others, intake_apart=True).run())
        elif args.command in ("up", "run"):
            fd, upstream = getattr(args, "listen_fd", None), getattr(args, "upstream", None)
            run_async(Host(settings, hosted, listen_fd=fd, upstream=upstream).run())
        elif args.command == "demo":
            return run_async(run_demo(settings, once=args.once, port_chosen=port_chosen(args)))
        elif args.command == "reply":
            sender = reply_sender()
            return run_async(send_reply(settings, args.text, args.incident, args.wait, sender))
        elif args.command == "replay":
            return run_async(run_replay(settings, args))
        elif args.command == "inspect":
            return run_async(run_inspect(settings, args))
        elif args.command == "stats":
            return run_async(run_stats(settings, args))
        elif args.command == "asyncapi":
            from services.runtime.asyncapi import render  # builds every service: only on demand

            print(render(), end="")
    except (NatsUnreachable, NatsServerError, HttpServerError, DataDirBusy, StaleLocalState) as exc:
        print(f"oncall: {mask_credentials(str(exc))}", file=sys.stderr)
        return 1
    except SettingsInvalid as exc:  # the demo's services, the person `reply` speaks as
        print(settings_error(exc.error), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
