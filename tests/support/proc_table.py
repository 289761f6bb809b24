"""Processes as Linux's /proc shows them (psutil is not a dependency): who descends from whom,
who is in which process group."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

GONE = frozenset("ZX")  # zombie or dead: exited, only the parent's wait is missing


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    ppid: int
    pgrp: int
    state: str
    name: str

    @property
    def alive(self) -> bool:
        return self.state not in GONE

    @property
    def command(self) -> str:
        """The command line, or the name in brackets when it has none (or has ended meanwhile)."""
        try:
            raw = Path(f"/proc/{self.pid}/cmdline").read_bytes()
        except OSError:
            raw = b""
        return (
            " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part) or f"[{self.name}]"
        )


def read(pid: int) -> ProcInfo | None:
    """Process `pid`, or None if there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # it ended while we looked
        return None
    # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses, so split at the last ")".
    head, _, rest = stat.rpartition(")")
    state, ppid, pgrp = rest.split()[:3]
    return ProcInfo(pid, int(ppid), int(pgrp), state, head.partition("(")[2])


def snapshot() -> dict[int, ProcInfo]:
    """Every process this user can see, by pid."""
    table: dict[int, ProcInfo] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            info = read(int(entry.name))
            if info is not None:
                table[info.pid] = info
    return table


def descendants(root: int) -> list[ProcInfo]:
    """The children of `root`, their children and so on (zombies included: see `alive`)."""
    table = snapshot()
    children: dict[int, list[ProcInfo]] = {}
    for info in table.values():
        children.setdefault(info.ppid, []).append(info)
    found: list[ProcInfo] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child.pid)
    return sorted(found, key=lambda info: info.pid)


def group_members(pgid: int) -> list[ProcInfo]:
    """The live processes of process group `pgid`."""
    return [info for info in snapshot().values() if info.pgrp == pgid and info.alive]
