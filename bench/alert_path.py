"""Modules on the alert path: which `services.*` modules run code while one alert is handled end to end.

`oncall up` (all five services in one process, embedded nats-server) runs under a profile hook
(`sys.setprofile` and `threading.setprofile`) that notes the module (`__name__` of the frame's globals)
of every Python function called or resumed, while recording is on. The backends are fakes on loopback
as in bench/pipeline.py: logs, Prometheus, GitHub, a scripted model (one send_diagnosis), Twilio.

Recording is switched on (SIGUSR1) once the process is ready and idle, the alert is POSTed, and it is
switched off (SIGUSR2) when the fake Twilio has received the WhatsApp message and the KV counter has
stopped moving (the notifier's records written). The same window is first recorded with nothing
happening, to show what runs when idle (nothing of ours should).

    .venv/bin/python -m bench.alert_path
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def child(out: Path, argv: list[str]) -> int:
    """`oncall <argv>` in this process, under the profile hook."""
    seen: set[str] = set()
    recording = [False]

    def hook(frame: FrameType, event: str, _: Any) -> None:
        if recording[0] and event == "call":
            name = frame.f_globals.get("__name__")
            if isinstance(name, str) and name.startswith("services."):
                seen.add(name)

    def start(*_: Any) -> None:
        seen.clear()
        recording[0] = True

    def stop(*_: Any) -> None:
        recording[0] = False
        loaded = sorted(m for m in sys.modules if m.startswith("services."))
        out.write_text(json.dumps({"ran": sorted(seen), "loaded": loaded}))

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    threading.setprofile(hook)
    sys.setprofile(hook)
    from services.runtime.cli import main

    return main(argv)


def record(proc: subprocess.Popen[Any], out: Path, work: Any) -> dict[str, list[str]]:
    out.unlink(missing_ok=True)
    os.kill(proc.pid, signal.SIGUSR1)
    time.sleep(0.2)
    work()
    os.kill(proc.pid, signal.SIGUSR2)
    deadline = time.monotonic() + 10
    while not out.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.1)  # written in one call; let it finish
    found: dict[str, list[str]] = json.loads(out.read_text())
    return found


def by_package(modules: list[str]) -> str:
    counts = Counter(m.split(".")[1] for m in modules)
    return ", ".join(f"{package} {n}" for package, n in sorted(counts.items()))


def parent() -> None:
    import httpx

    from bench.common import TOKEN, demo_backends, model_settings, whatsapp_settings
    from bench.kv_ops import kv_ops, settled
    from bench.pipeline import conclude
    from services.runtime import demo
    from tests.fakes import FakeOpenAI, FakeTwilio
    from tests.support.processes import end_process_group, free_port, product_env, start_process

    now = datetime.now(UTC)
    log_lines = demo.demo_log_lines(now, seconds=300)
    with (
        demo_backends(log_lines) as backends,
        FakeOpenAI([conclude]) as model,
        FakeTwilio() as twilio,
    ):
        tmp = backends.tmp
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        settings = backends.settings() | model_settings(model) | whatsapp_settings(twilio)
        settings["ONCALL_HTTP_PORT"] = str(port)
        out = Path(tmp) / "modules.json"
        with (Path(tmp) / "oncall.err").open("w") as err:
            proc = start_process(
                [sys.executable, __file__, "--child", str(out), "up"],
                cwd=ROOT,
                env=product_env(settings),
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        try:
            with httpx.Client(timeout=30) as client:
                deadline = time.monotonic() + 60
                while True:
                    if proc.poll() is not None:
                        raise RuntimeError((Path(tmp) / "oncall.err").read_text()[-3000:])
                    try:
                        if client.get(url + "/readyz").status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    if time.monotonic() > deadline:
                        raise RuntimeError("oncall up was not ready within 60 s")
                    time.sleep(0.1)
                settled(client, url, kv_ops(client, url))
                idle = record(proc, out, lambda: time.sleep(2.0))

                def one_alert() -> None:
                    before = kv_ops(client, url)
                    hook = demo.demo_alert_webhook(now, run_id="alert-path")
                    response = client.post(
                        url + "/alerts", json=hook, headers={"Authorization": f"Bearer {TOKEN}"}
                    )
                    incident = response.json()["incident_ids"][0]
                    twilio.wait_for(lambda t: any(f"#{incident}" in m["Body"] for m in t.messages), 30)
                    settled(client, url, before)

                alert = record(proc, out, one_alert)
        finally:
            end_process_group(proc)
    print(
        f"services.* modules loaded by `oncall up`: {len(alert['loaded'])}  ({by_package(alert['loaded'])})"
    )
    print(f"ran while idle (2 s): {len(idle['ran'])}  {' '.join(idle['ran'])}")
    print(f"ran while one alert was handled: {len(alert['ran'])}  ({by_package(alert['ran'])})")
    for name in alert["ran"]:
        print(f"  {name}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    known, rest = parser.parse_known_args()
    if known.child is not None:
        sys.exit(child(known.child, rest))
    parent()
