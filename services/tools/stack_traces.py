"""Stack traces in log events: which lines belong to one, and its frames, for Python, Java,
Node, Go, .NET, Rust, PHP and Ruby.

Pure functions of text. Frames are kept innermost LAST whatever the language (Python's order).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from services.contracts.tool_results import Language, StackFrame, StackTrace
from services.runtime.text import clip

MAX_FRAMES = 30  # innermost frames kept per trace (deep recursion repeats the same frames)
MAX_CODE_CHARS = 300


# --- continuation lines ------------------------------------------------------------------------

_PY_TRACEBACK = "Traceback (most recent call last):"
_PY_CHAIN_STARTS = ("During handling of the above exception", "The above exception was the direct cause")
_DOTNET_SECTION_END = "--- End of "  # "--- End of stack trace from previous location ---" (async hops)
_CONTINUATION_STARTS = (
    "Caused by:",
    "Suppressed:",
    "goroutine ",
    "created by ",
    _DOTNET_SECTION_END,
    *_PY_CHAIN_STARTS,
)
_GO_PANIC_STARTS = ("panic:", "fatal error:")
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(?::\s.*|:?)$")
_GO_FUNCTION_LINE = re.compile(r"^[\w./*()\[\]-]+\(.*\)$")


def continues(previous: str, line: str) -> bool:
    """Whether `line` belongs to the multi-line event `previous` (a trace logged line by line).

    A multi-line entry is a whole event already, never a continuation.
    """
    if "\n" in line:
        return False
    if not line.strip():  # a blank line inside a trace: Go after `panic:`, Python between chained parts
        return previous.startswith(_GO_PANIC_STARTS) or "\n" in previous
    last = previous.rsplit("\n", 1)[-1]
    if line.startswith(_PY_TRACEBACK):  # after its log line, or the next link of a chain
        return _PY_TRACEBACK not in previous or last.startswith(_PY_CHAIN_STARTS)
    if line[0] in " \t" or line.startswith(_CONTINUATION_STARTS):
        return True
    in_python_trace = _PY_TRACEBACK in previous and last[:1] in (" ", "\t")
    if in_python_trace and _EXCEPTION_LINE.match(line):
        return True  # the exception line that ends a Python traceback is not indented
    return "\ngoroutine " in previous and bool(_GO_FUNCTION_LINE.match(line))


# --- stack traces ------------------------------------------------------------------------------


TraceSignature = tuple[str, tuple[tuple[str, int | None, str], ...]]


@dataclass(frozen=True)
class Trace:
    """A parsed stack trace; frames are innermost LAST (Python's order) whatever the language."""

    exception: str
    frames: tuple[StackFrame, ...]

    @property
    def signature(self) -> TraceSignature:
        # The exception type, not its message: ids in messages must not split a group.
        kind = self.exception.split(":", 1)[0].strip()
        return kind, tuple((f.file, f.line, f.function) for f in self.frames)


_PY_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+)(?:, in (?P<function>.+))?$')
_PY_CARETS = re.compile(r"^\s*[~^]+\s*$")
_NODE_FRAME = re.compile(r"^\s+at (?:(?P<function>.+?) \()?(?P<file>[^\s()]+?):(?P<line>\d+):\d+\)?\s*$")
_JAVA_FRAME = re.compile(r"^\s+at (?P<function>[^\s(]+)\((?P<source>[^)]*)\)\s*$")
_GO_FILE_LINE = re.compile(r"^\s+(?P<file>\S+\.go):(?P<line>\d+)(?:\s.*)?$")
# `   at Ns.Type.Method(Type arg) in /src/File.cs:line 42`; the " in ...:line N" part needs the PDB.
_DOTNET_FRAME = re.compile(
    r"^\s+at (?P<function>[^\s(]+)\((?P<args>[^)]*)\)(?: in (?P<file>.+):line (?P<line>\d+))?\s*$"
)
_AT = re.compile(r"^\s+at\s")
_DOTNET_INNER_END = "--- End of inner exception stack trace ---"
_DOTNET_INNER_ARROW = " ---> "


def parse_trace(text: str) -> Trace | None:
    """The stack trace in a log event, if any: Python, Java, Node, Go (basic), .NET, Rust, PHP or Ruby."""
    lines = text.split("\n")
    if _PY_TRACEBACK in text:
        return _parse_python(lines)
    # Before Node: a Rust backtrace's `at ./src/x.rs:3:9` lines look like Node frames.
    if _RUST_PANIC.search(text):
        return _parse_rust(text, lines)
    if any(_PHP_FRAME.match(line) for line in lines):
        return _parse_php(lines)
    if any(_RUBY_FRAME.match(line) for line in lines):
        return _parse_ruby(lines)
    if any(_GO_FILE_LINE.match(line) for line in lines) and "goroutine " in text:
        return _parse_go(lines)
    if _looks_dotnet(text, lines):
        return _parse_dotnet(lines)
    if any(_NODE_FRAME.match(line) for line in lines):
        return _parse_at_frames(lines, _NODE_FRAME, _node_frame)
    if any(_JAVA_FRAME.match(line) for line in lines):
        return _parse_at_frames(lines, _JAVA_FRAME, _java_frame)
    return None


def _parse_python(lines: list[str]) -> Trace:
    """One link of a chain of tracebacks: the exception actually raised (the last link), unless
    it was raised while handling an earlier one in the same function (an `except` that re-raises
    or translates) or has no frame of the application: then the earlier link says what failed
    and where. The whole chain stays in `text`."""
    starts = [i for i, line in enumerate(lines) if _PY_TRACEBACK in line]
    links = [
        _python_link(lines[start + 1 : end])
        for start, end in zip(starts, [*starts[1:], len(lines)], strict=True)
    ]
    chosen = links[-1]
    for earlier in reversed(links[:-1]):
        if not _reraised_from(chosen, earlier):
            break
        chosen = earlier
    return chosen


def _python_link(lines: list[str]) -> Trace:
    frames: list[StackFrame] = []
    exception = ""
    for i, line in enumerate(lines):
        if match := _PY_FRAME.match(line):
            code = lines[i + 1].strip() if i + 1 < len(lines) else ""
            usable = code and not _PY_FRAME.match(lines[i + 1]) and lines[i + 1][:1] in (" ", "\t")
            frames.append(
                _frame(
                    "python",
                    match["file"],
                    int(match["line"]),
                    match["function"] or "?",
                    clip(code, MAX_CODE_CHARS) if usable else None,
                )
            )
        elif line and line[0] not in " \t" and not _PY_CARETS.match(line):
            exception = line.strip()
            break
    return Trace(exception or "(no exception line)", tuple(frames[-MAX_FRAMES:]))


def _reraised_from(later: Trace, earlier: Trace) -> bool:
    """Whether `later` only re-raises `earlier`: it has no application frame while `earlier` has
    one, or its innermost application frame is in the function where `earlier` failed."""
    own_later = [f for f in later.frames if not is_library_frame(f)]
    own_earlier = [f for f in earlier.frames if not is_library_frame(f)]
    if not own_earlier:
        return False
    if not own_later:
        return True
    inner_later, inner_earlier = own_later[-1], own_earlier[-1]
    return (inner_later.file, inner_later.function) == (inner_earlier.file, inner_earlier.function)


# Rust: `thread 'main' panicked at src/x.rs:3:9:` then the message (1.73+), or the older
# `panicked at 'message', src/x.rs:3:9`; with RUST_BACKTRACE, `  4: crate::f` / `at ./src/x.rs:3:9`.
_RUST_PANIC = re.compile(r"panicked at (?:'(?P<message>.*)', )?(?P<file>[^\s:'\"]+\.rs):(?P<line>\d+):\d+:?")
_RUST_FUNCTION = re.compile(r"^\s*\d+: (?P<function>\S+)")
_RUST_AT = re.compile(r"^\s+at (?P<file>\S+\.rs):(?P<line>\d+)(?::\d+)?\s*$")


def _parse_rust(text: str, lines: list[str]) -> Trace:
    """The panic's message and location; the backtrace's frames (innermost first as Rust prints
    them) when there is one, else the panic's location as the only frame."""
    panic = _RUST_PANIC.search(text)
    assert panic is not None
    message = panic["message"]
    if message is None:  # the message is the line after `panicked at file:line:col:`
        after = text[panic.end() :].lstrip(" ").split("\n")
        rest = after[1:] if not after[0].strip() else after
        message = next((line.strip() for line in rest if line.strip()), "")
    frames: list[StackFrame] = []
    for previous, line in itertools.pairwise(lines):
        if (at := _RUST_AT.match(line)) and (named := _RUST_FUNCTION.match(previous)):
            frames.append(_frame("rust", at["file"].removeprefix("./"), int(at["line"]), named["function"]))
    if not frames:
        frames = [_frame("rust", panic["file"], int(panic["line"]), "")]  # the panic names no function
    return Trace(message or "panic", tuple(reversed(frames[:MAX_FRAMES])))


# PHP: `#3 /var/www/app/Foo.php(41): Bar->baz()`, innermost first; Laravel logs the exception's
# class in its context, `[object] (Illuminate\\Database\\QueryException(code: 40001): ...`.
_PHP_FRAME = re.compile(r"^\s*#\d+ (?P<file>[^\s(]+\.php)\((?P<line>\d+)\): (?P<function>.+?)\s*$")
_PHP_CLASS = re.compile(r"\(\s*(?P<cls>[A-Za-z_][\w\\]*)\(code: [^)]*\): ")
_PHP_PREFIX = re.compile(r"^\[[^\]]+\] \w+\.[A-Z]+: |^PHP (?:Fatal error|Warning):\s+(?:Uncaught )?")


def _php_function(call: str) -> str:
    """`App\\\\Services\\\\Stock->reserve()` as `App\\Services\\Stock->reserve` (JSON escapes undone)."""
    return re.sub(r"\\+", r"\\", call).removesuffix("()")


# Ruby: `app/x.rb:27:in 'Refund#call': message (NoMethodError)` then `\tfrom app/y.rb:9:in ...`
# (uncaught), or Rails' `NoMethodError (message):` then `app/x.rb:27:in `call'`; innermost first.
_RUBY_FRAME = re.compile(
    r"^\s*(?:from )?(?P<file>[^\s:]+\.rb):(?P<line>\d+):in [`'](?P<function>[^'`]+)'(?P<rest>.*)$"
)
_RUBY_UNCAUGHT = re.compile(r"^: (?P<message>.*) \((?P<cls>[A-Z][\w:]*)\)\s*$")


def _parse_ruby(lines: list[str]) -> Trace:
    """The frames, and the exception: `Class: message` from the uncaught form's first frame, or
    the line before the first frame (Rails)."""
    found = [(i, m) for i, m in enumerate(map(_RUBY_FRAME.match, lines)) if m is not None]
    frames = [_frame("ruby", m["file"], int(m["line"]), m["function"]) for _, m in found]
    first_index, first = found[0]
    uncaught = _RUBY_UNCAUGHT.match(first["rest"])
    if uncaught is not None:
        exception = f"{uncaught['cls']}: {uncaught['message']}"
    else:
        header = next((line.strip() for line in reversed(lines[:first_index]) if line.strip()), "")
        exception = header.rstrip(":")
    return Trace(exception or "(no exception line)", tuple(reversed(frames[:MAX_FRAMES])))


def _parse_php(lines: list[str]) -> Trace:
    """The frames under `#N file(line): function`, and the exception: the message of the first
    line (a Laravel prefix and context cut), with the class Laravel names in its context."""
    found = [m for m in map(_PHP_FRAME.match, lines) if m is not None]
    # `#4 a.php(41): B->c()` says that line 41 of a.php calls B->c(): the function running at
    # a.php:41 is the one the next (outer) entry calls.
    callees = [_php_function(m["function"]) for m in found]
    frames = [
        _frame("php", m["file"], int(m["line"]), callees[i + 1] if i + 1 < len(callees) else "")
        for i, m in enumerate(found)
    ]
    head = _PHP_PREFIX.sub("", lines[0].strip()).split(' {"exception"', 1)[0].strip()
    named = _PHP_CLASS.search("\n".join(lines))
    if named is not None:  # after the message: the log line's own words begin the exception
        cls = re.sub(r"\\+", r"\\", named["cls"])  # JSON-escaped `\\` back to one backslash
        head = f"{head} ({cls})"
    return Trace(head or "(no exception line)", tuple(reversed(frames[:MAX_FRAMES])))


def _frame(
    language: Language, file: str, line: int | None, function: str, code: str | None = None
) -> StackFrame:
    return StackFrame(file=file, line=line, function=function, code=code, language=language)


def _node_frame(match: re.Match[str]) -> StackFrame:
    return _frame("node", match["file"], int(match["line"]), match["function"] or "<anonymous>")


def _java_frame(match: re.Match[str]) -> StackFrame:
    source, _, number = match["source"].partition(":")
    frame = _frame("java", source, int(number) if number.isdigit() else None, match["function"])
    return frame.model_copy(update={"source_path": jvm_source_path(match["function"], source)})


_JVM_SOURCES = (".java", ".kt", ".kts", ".scala", ".groovy", ".clj")


def jvm_source_path(function: str, file: str) -> str | None:
    """Where a JVM frame's file sits under its source root: `com/shop/Cart.java` for
    `com.shop.Cart.total` in `Cart.java`. The package is the qualified name up to the class (the
    first part starting with a capital or holding a `$`); a module prefix (`java.base/`) is
    dropped. None when the frame printed a directory, or names no package or no source file."""
    if "/" in file or "\\" in file or not file.endswith(_JVM_SOURCES):
        return None
    package = []
    for part in function.rsplit("/", 1)[-1].split(".")[:-1]:
        if not part or part[0].isupper() or "$" in part:
            break
        package.append(part)
    return "/".join([*package, file]) if package else None


def dotnet_source_path(function: str) -> str | None:
    """Where a .NET frame without a file (no PDB) most likely sits: the namespace as folders and
    the class as `Class.cs` (`Shop/Tax/TaxCalculator.cs` for `Shop.Tax.TaxCalculator.Quote`);
    compiler-made names (`<>c`, `<GetAsync>d__4`) and nested types (`Outer+Inner`) are cut."""
    parts = function.split(".")
    generated = next((i for i, part in enumerate(parts) if part.startswith("<")), None)
    type_parts = parts[:generated] if generated is not None else parts[:-1]
    if not type_parts:
        return None
    *namespace, type_name = type_parts
    type_name = re.sub(r"`\d+$", "", type_name.split("+", 1)[0])
    if not type_name.isidentifier():
        return None
    return "/".join([*namespace, f"{type_name}.cs"])


def _parse_at_frames(
    lines: list[str], pattern: re.Pattern[str], to_frame: Callable[[re.Match[str]], StackFrame]
) -> Trace:
    """Java and Node list the innermost frame first; the thrown exception heads the first block."""
    first = next(i for i, line in enumerate(lines) if pattern.match(line))
    # Frames the pattern does not take (`at JSON.parse (<anonymous>)`) are not the header either.
    header = next((line for line in reversed(lines[:first]) if line.strip() and not _AT.match(line)), "")
    frames: list[StackFrame] = []
    for line in lines[first:]:
        if line.startswith(("Caused by:", "Suppressed:")) or line.strip().startswith("Caused by:"):
            break  # causes are kept in `text`; frames describe the thrown exception
        if match := pattern.match(line):
            frames.append(to_frame(match))
    exception = re.sub(r'^Exception in thread "[^"]*"\s+', "", header.strip())
    return Trace(exception or "(no exception line)", tuple(reversed(frames[:MAX_FRAMES])))


def _looks_dotnet(text: str, lines: list[str]) -> bool:
    """.NET frames resemble Java's; they differ by `:line N`, `--- End of` markers, or an
    argument list with parameter names (a Java frame has `File.java:N` between the brackets)."""
    frames = [m for m in map(_DOTNET_FRAME.match, lines) if m]
    if not frames:
        return False
    if _DOTNET_SECTION_END in text or any(m["file"] for m in frames):
        return True
    return any(" " in m["args"] and m["args"] not in ("Native Method", "Unknown Source") for m in frames)


def _parse_dotnet(lines: list[str]) -> Trace:
    """The innermost exception's frames (the first block, up to the end of the inner exception's
    trace), innermost first as .NET prints them; `A ---> B` headers name B, the innermost."""
    first = next(i for i, line in enumerate(lines) if _DOTNET_FRAME.match(line))
    header = next((line for line in reversed(lines[:first]) if line.strip()), "")
    frames: list[StackFrame] = []
    for line in lines[first:]:
        if _DOTNET_INNER_END in line:
            break
        if match := _DOTNET_FRAME.match(line):
            number = int(match["line"]) if match["line"] else None
            frame = _frame("dotnet", match["file"] or "", number, match["function"])
            if not frame.file:
                frame = frame.model_copy(update={"source_path": dotnet_source_path(frame.function)})
            frames.append(frame)
    exception = header.strip().rsplit(_DOTNET_INNER_ARROW.strip(), 1)[-1].strip()
    return Trace(exception or "(no exception line)", tuple(reversed(frames[:MAX_FRAMES])))


def _parse_go(lines: list[str]) -> Trace:
    """The first goroutine (the panicking one); Go lists the innermost call first."""
    exception = next((line.strip() for line in lines if line.startswith(_GO_PANIC_STARTS)), "")
    frames: list[StackFrame] = []
    started = False
    for previous, line in itertools.pairwise(lines):
        if line.startswith("goroutine "):
            if started:
                break
            started = True
        elif started and (match := _GO_FILE_LINE.match(line)):
            function = re.sub(r"\([^()]*\)$", "", previous.strip())  # drop the argument list
            frames.append(_frame("go", match["file"], int(match["line"]), function))
    return Trace(exception or lines[0].strip() or "(no exception line)", tuple(reversed(frames[:MAX_FRAMES])))


_LIBRARY_PATH = re.compile(
    r"site-packages/|dist-packages/|node_modules/|/lib/python\d|^<frozen |^node:|^internal/"
    r"|/usr/local/go/src/|/usr/lib/go|/go/pkg/mod/"
    r"|/rustc/|\.cargo/registry/|^library/(?:std|core|alloc)/"  # Rust's std and crates
    r"|/vendor/"  # PHP's Composer packages (and Go's vendored modules)
    r"|/gems/|/lib/ruby/\d"  # Ruby's gems and standard library
)
_RUNTIME_PREFIXES = (
    *("java.", "javax.", "jdk.", "sun.", "com.sun.", "kotlin.", "scala."),  # the JDK and JVM languages
    "runtime.",  # Go
    *("System.", "Microsoft.", "lambda_method"),  # .NET
)


def is_library_frame(frame: StackFrame) -> bool:
    """Frames of installed packages, the runtime or the JDK, as opposed to the application's own code."""
    file = frame.file.replace("\\", "/")
    if _LIBRARY_PATH.search(file) or frame.function.startswith(_RUNTIME_PREFIXES):
        return True
    return file in ("Native Method", "Unknown Source")


MAX_CODE_FRAMES = 3


def code_frames(traces: Iterable[StackTrace]) -> list[StackFrame]:
    """The application frames whose file can be looked up (a file, or a package's path), innermost
    first, of the first stack trace that has one (fetch_logs ranks them changed first, then most
    frequent): the failing frame, then its callers, at most MAX_CODE_FRAMES."""
    for trace in traces:
        found = [f for f in reversed(trace.frames) if f.lookup_path and not is_library_frame(f)]
        if found:
            return found[:MAX_CODE_FRAMES]
    return []


def top_frame(traces: Iterable[StackTrace]) -> StackFrame | None:
    """The innermost application frame with a file (the code can be fetched) of the first stack
    trace that has one (fetch_logs ranks them changed first, then most frequent)."""
    frames = code_frames(traces)
    return frames[0] if frames else None
