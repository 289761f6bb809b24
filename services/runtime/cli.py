"""The `oncall` command: up (local mode), run <service>, demo, reply."""

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from pydantic import ValidationError

from services.runtime.broker import FASTSTREAM_LOGGER, NatsUnreachable
from services.runtime.embedded_nats import NatsServerError
from services.runtime.host import Host
from services.runtime.local import run_demo, send_reply
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
    return parser


def load_settings(args: argparse.Namespace) -> Settings:
    settings = Settings()
    updates: dict[str, object] = {}
    if getattr(args, "http_port", None) is not None:
        updates["http_port"] = args.http_port
    if getattr(args, "data_dir", None) is not None:
        updates["data_dir"] = args.data_dir
    return settings.model_copy(update=updates)


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if level.upper() != "DEBUG":
        FASTSTREAM_LOGGER.setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args)
    except ValidationError as exc:
        print(f"oncall: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    # The demo prints its own story; keep the logs to warnings there.
    configure_logging("WARNING" if args.command in ("demo", "reply") else settings.log_level)
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
    except (NatsUnreachable, NatsServerError) as exc:
        print(f"oncall: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
