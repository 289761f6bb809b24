"""The `oncall` command: up (local mode), run <service>, demo, reply, replay, inspect."""

import argparse
import asyncio
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from services.contracts import streams
from services.runtime.broker import FASTSTREAM_LOGGER, NatsUnreachable, check_reachable
from services.runtime.embedded_nats import NatsServerError
from services.runtime.host import Host, HttpServerError, read_local_state
from services.runtime.local import run_demo, send_reply
from services.runtime.observability import configure_logging
from services.runtime.operate import Selection, describe, read_conversation, replay
from services.runtime.service import SERVICE_NAMES
from services.runtime.settings import Settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="oncall", description="AI on-call agent")
    commands = parser.add_subparsers(dest="command", required=True)

    def with_host_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--http-port", type=int, help="HTTP port (ONCALL_HTTP_PORT, default 8080; 0 = any)")
        sub.add_argument("--data-dir", type=Path, help="state directory (ONCALL_DATA_DIR, default ./.oncall)")

    up = commands.add_parser("up", help="local mode: all five services in one process")
    with_host_options(up)
    run = commands.add_parser("run", help="one service alone against NATS_URL (as on Kubernetes)")
    run.add_argument("service", choices=SERVICE_NAMES)
    with_host_options(run)
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
    replay.add_argument("--stream", default=streams.ALERTS.name, help="stream (default ONCALL_ALERTS)")
    replay.add_argument("--seq", help="sequence range, e.g. 10-20 or 15")
    replay.add_argument("--since", type=datetime.fromisoformat, help="stored at or after (ISO 8601)")
    replay.add_argument("--until", type=datetime.fromisoformat, help="stored at or before (ISO 8601)")
    replay.add_argument("--incident", help="only messages of this incident")
    replay.add_argument("--subject", help="only messages on this subject")
    replay.add_argument("--dry-run", action="store_true", help="list what would be re-published")
    replay.add_argument("--force", action="store_true", help="investigate again, and tell the humans again")
    replay.add_argument("--data-dir", type=Path)
    commands.add_parser("asyncapi", help="print the AsyncAPI document of the bus (JSON)")
    inspect = commands.add_parser("inspect", help="show an incident's conversation from KV")
    inspect.add_argument("incident")
    inspect.add_argument("--json", action="store_true", help="the raw KV value")
    inspect.add_argument("--data-dir", type=Path)
    return parser


def parse_seq(text: str | None) -> tuple[int | None, int | None]:
    if not text:
        return None, None
    first, _, last = text.partition("-")
    return int(first), int(last or first)


def as_utc(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def nats_url_for(settings: Settings) -> str | None:
    """NATS_URL, or the embedded server of a local `oncall up` in this data dir."""
    if settings.nats_url:
        return settings.nats_url
    state = read_local_state(settings.data_dir)
    return state["nats_url"] if state else None


async def run_replay(settings: Settings, args: argparse.Namespace) -> int:
    url = nats_url_for(settings)
    if url is None:
        print("oncall replay: set NATS_URL (or run it beside a local `oncall up`)", file=sys.stderr)
        return 2
    await check_reachable(url)
    first, last = parse_seq(args.seq)
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
        print(f"{args.stream} #{message.seq} {stamp} {message.subject} incident={message.incident_id}")
    print(f"{verb} {len(messages)} message(s)" + (" with force" if args.force and not args.dry_run else ""))
    return 0


async def run_inspect(settings: Settings, args: argparse.Namespace) -> int:
    url = nats_url_for(settings)
    if url is None:
        print("oncall inspect: set NATS_URL (or run it beside a local `oncall up`)", file=sys.stderr)
        return 2
    await check_reachable(url)
    conversation = await read_conversation(url, args.incident.lstrip("#"))
    if conversation is None:
        print(f"no incident {args.incident}", file=sys.stderr)
        return 1
    print(conversation.model_dump_json(indent=1) if args.json else describe(conversation))
    return 0


def load_settings(args: argparse.Namespace) -> Settings:
    settings = Settings()
    updates: dict[str, object] = {}
    if getattr(args, "http_port", None) is not None:
        updates["http_port"] = args.http_port
    if getattr(args, "data_dir", None) is not None:
        updates["data_dir"] = args.data_dir
    return settings.model_copy(update=updates)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args)
    except ValidationError as exc:
        print(f"oncall: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    # The demo prints its own story; keep the logs to warnings there.
    quiet = args.command in ("demo", "reply", "replay", "inspect", "asyncapi")
    level = "WARNING" if quiet else settings.log_level
    configure_logging(level, settings.log_format)
    if level.upper() != "DEBUG":
        FASTSTREAM_LOGGER.setLevel(logging.WARNING)
    try:
        if args.command == "up":
            asyncio.run(Host(settings, SERVICE_NAMES).run())
        elif args.command == "run":
            if not settings.nats_url:
                print("oncall run: NATS_URL is required (use `oncall up` for local mode)", file=sys.stderr)
                return 2
            asyncio.run(Host(settings, [args.service]).run())
        elif args.command == "demo":
            return asyncio.run(run_demo(settings, once=args.once))
        elif args.command == "reply":
            return asyncio.run(send_reply(settings, args.text, args.incident, args.wait))
        elif args.command == "replay":
            return asyncio.run(run_replay(settings, args))
        elif args.command == "inspect":
            return asyncio.run(run_inspect(settings, args))
        elif args.command == "asyncapi":
            from services.runtime.asyncapi import render  # builds every service: only on demand

            print(render(), end="")
    except (NatsUnreachable, NatsServerError, HttpServerError) as exc:
        print(f"oncall: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
