"""Loops in the model's tool calls: the same call again, the same call with only its window or
limit changed, or two calls taken in turn (A, B, A, B). A small model that found nothing tends to
ask again with a wider window until its rounds run out; each such round costs a full prompt and
tells it nothing new. The first loop is answered with a note, the next one forces the conclusion
(investigation.py)."""

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from services.diagnoser.toolcalls import call_key

# Arguments that only move or widen what a tool looks at (tools.py's args models): changing
# them alone is asking the same question again.
WINDOW_ARGS = frozenset(
    {
        "seconds",
        "limit",
        "starts_at",
        "context_lines",
        "range_minutes",
        "step_seconds",
        "end",
        "since",
        "until",
    }
)

LoopKind = Literal["identical", "window", "alternating"]


@dataclass(frozen=True)
class Loop:
    kind: LoopKind
    tool: str
    other: str | None = None  # alternating: the tool taken in turn with this one

    def describe(self) -> str:
        if self.kind == "identical":
            return f"{self.tool} called again with the same arguments"
        if self.kind == "window":
            return f"{self.tool} called again with only the window or limit changed"
        return f"{self.tool} called again, alternating with {self.other}"


def shape_key(tool: str, args: dict[str, Any]) -> str:
    """A call without its window and limit: two calls with one shape ask the same question."""
    kept = {k: v for k, v in args.items() if k not in WINDOW_ARGS}
    return tool + json.dumps(kept, sort_keys=True, default=str)


@dataclass(frozen=True)
class Made:
    tool: str
    exact: str
    shape: str


def loop_of(made: list[Made], tool: str, args: dict[str, Any]) -> Loop | None:
    """Whether this call, after the calls `made` before it (in order), repeats one of them."""
    exact, shape = call_key(tool, args), shape_key(tool, args)
    if all(m.shape != shape for m in made):
        return None
    if len(made) >= 2 and made[-2].shape == shape and made[-1].shape != shape:
        return Loop("alternating", tool, made[-1].tool)
    if any(m.exact == exact for m in made):
        return Loop("identical", tool)
    return Loop("window", tool)


@dataclass
class LoopWatch:
    """The model's calls of one investigation, and the loops found among them."""

    made: list[Made] = field(default_factory=list)
    found: list[Loop] = field(default_factory=list)

    def observe(self, calls: list[tuple[str, dict[str, Any]]]) -> list[Loop]:
        """The loops among one round's calls (each compared with every call before it)."""
        loops = []
        for tool, args in calls:
            loop = loop_of(self.made, tool, args)
            if loop is not None:
                loops.append(loop)
            self.made.append(Made(tool, call_key(tool, args), shape_key(tool, args)))
        self.found += loops
        return loops


def loop_note(loops: list[Loop], final: bool) -> str:
    """The agent's note to the model after a round with loops (a user turn, not a tool result:
    tool output is untrusted data the model is told never to obey)."""
    what = "; ".join(dict.fromkeys(loop.describe() for loop in loops))
    if final:
        return f"Note from the agent: {what}, again. Conclude now with send_diagnosis from the evidence."
    return (
        f"Note from the agent: {what}. Asking again will not find anything new: the results are above. "
        "Call a different tool or conclude with send_diagnosis; the next repeat ends the investigation."
    )
