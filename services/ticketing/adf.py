"""Atlassian Document Format (ADF) builders: Jira Cloud v3 takes `description` only as an ADF doc.

Pure functions returning plain dicts. ADF rejects empty text nodes, so `text("")` raises and
the description builder leaves out a section whose content is blank.
"""

import copy
import json
from collections.abc import Iterable, Iterator
from typing import Any

from services.contracts.models import Diagnosis, TicketRequested, incident_tag

Node = dict[str, Any]

# Jira's limit on a rich-text field; Alertmanager's Jira notifier applies the same (maxDescriptionLenRunes).
# Measured on the serialised ADF, which is stricter than counting the visible text only.
MAX_DESCRIPTION_CHARS = 32_767
TRUNCATION_MARK = " … (truncated)"


def doc(*nodes: Node) -> Node:
    return {"type": "doc", "version": 1, "content": list(nodes)}


def text(s: str, marks: list[Node] | None = None) -> Node:
    if not s:
        raise ValueError("ADF text nodes must not be empty")
    node: Node = {"type": "text", "text": s}
    if marks:
        node["marks"] = marks
    return node


def link(label: str, href: str) -> Node:
    return text(label, marks=[{"type": "link", "attrs": {"href": href}}])


def code(s: str) -> Node:
    """Inline code (monospace), e.g. a file path."""
    return text(s, marks=[{"type": "code"}])


def heading(s: str, level: int = 2) -> Node:
    if not 1 <= level <= 6:
        raise ValueError(f"heading level must be 1..6, not {level}")
    return {"type": "heading", "attrs": {"level": level}, "content": [text(s)]}


def paragraph(*inline: Node) -> Node:
    return {"type": "paragraph", "content": list(inline)}


def hard_break() -> Node:
    return {"type": "hardBreak"}


def text_paragraph(s: str) -> Node:
    """A paragraph of plain text whose line breaks stay line breaks (ADF wants hardBreak nodes)."""
    inline: list[Node] = []
    for line in s.splitlines():
        if line.strip():
            inline += [hard_break(), text(line)] if inline else [text(line)]
    return paragraph(*inline)


def bullet_list(items: Iterable[str | Node]) -> Node:
    """One list item per entry: a string becomes a paragraph of text, a node a paragraph holding it."""
    entries = [
        {"type": "listItem", "content": [paragraph(text(item) if isinstance(item, str) else item)]}
        for item in items
    ]
    if not entries:
        raise ValueError("an ADF bullet list needs at least one item")
    return {"type": "bulletList", "content": entries}


def code_block(s: str, language: str | None = None) -> Node:
    node: Node = {"type": "codeBlock", "content": [text(s)]}
    if language:
        node["attrs"] = {"language": language}
    return node


# --- the ticket's description -------------------------------------------------------------


def diagnosis_description(req: TicketRequested) -> Node:
    """The ticket body: the request's summary, the diagnosis in sections, links, and where it came from."""
    blocks: list[Node] = []
    if req.summary.strip():
        blocks.append(text_paragraph(req.summary))
    if req.diagnosis is not None:
        blocks.extend(_diagnosis_sections(req.diagnosis, req))
    links = [
        link(label, url.strip())
        for label, url in (("Alert source", req.generator_url), ("Runbook", req.runbook_url))
        if url and url.strip()
    ]
    if links:
        blocks += [heading("Links"), bullet_list(links)]
    blocks.append(paragraph(text(_provenance(req))))
    return fit(doc(*blocks))


def _diagnosis_sections(diagnosis: Diagnosis, req: TicketRequested) -> list[Node]:
    blocks: list[Node] = []
    if diagnosis.root_cause.strip():
        blocks += [heading("Root cause"), text_paragraph(diagnosis.root_cause)]
    if diagnosis.affected_file and diagnosis.affected_file.strip():
        where = diagnosis.affected_file.strip()
        if diagnosis.line is not None:
            where = f"{where}:{diagnosis.line}"
        blocks += [heading("Where"), paragraph(code(where))]
    evidence = evidence_blocks(diagnosis.evidence)
    if evidence:
        blocks += [heading("Evidence"), *evidence]
    if diagnosis.suggested_fix.strip():
        blocks += [heading("Suggested fix"), text_paragraph(diagnosis.suggested_fix)]
    steps = [step.strip() for step in diagnosis.next_steps if step.strip()]
    if steps:
        blocks += [heading("Next steps"), bullet_list(steps)]
    method = "rule-based diagnosis" if diagnosis.method == "rules" else "model diagnosis"
    # The request's priority: the human may have changed the diagnosis's.
    about = f"Priority {req.priority}; {method}, confidence {diagnosis.confidence:.0%}."
    if req.service:
        about = f"Service {req.service}. {about}"
    blocks.append(paragraph(text(about)))
    return blocks


def evidence_blocks(entries: Iterable[str]) -> list[Node]:
    """Code blocks, in order: consecutive one-line entries (log lines, figures) share one; an entry of
    several lines (a stack trace, a code window) gets its own, so its lines stay together and apart."""
    blocks: list[Node] = []
    lines: list[str] = []
    for entry in (e.strip("\n") for e in entries if e.strip()):
        if "\n" not in entry:
            lines.append(entry)
            continue
        if lines:
            blocks.append(code_block("\n".join(lines)))
            lines = []
        blocks.append(code_block(entry))
    if lines:
        blocks.append(code_block("\n".join(lines)))
    return blocks


def _provenance(req: TicketRequested) -> str:
    return (
        f"Created by the on-call agent from incident {incident_tag(req.incident_id)} "
        f"at the request of {req.requested_by}."
    )


# --- size limit -------------------------------------------------------------------------------


def serialised_length(document: Node) -> int:
    return len(json.dumps(document, ensure_ascii=False, separators=(",", ":")))


def fit(document: Node, limit: int = MAX_DESCRIPTION_CHARS) -> Node:
    """A copy of `document` within `limit`: the longest text is cut first (in practice the evidence),
    so the headings, links and provenance survive."""
    result = copy.deepcopy(document)
    while (excess := serialised_length(result) - limit) > 0:
        longest = max(_text_nodes(result), key=lambda node: len(node["text"]), default=None)
        if longest is None or len(longest["text"]) <= len(TRUNCATION_MARK) + 1:
            result["content"].pop()  # only tiny texts left: drop whole blocks from the end
            continue
        # Each removed character shortens the JSON by at least one, so one cut usually suffices.
        keep = max(1, len(longest["text"]) - excess - len(TRUNCATION_MARK))
        longest["text"] = longest["text"][:keep] + TRUNCATION_MARK
    return result


def _text_nodes(node: Node) -> Iterator[Node]:
    if node.get("type") == "text":
        yield node
    for child in node.get("content", []):
        yield from _text_nodes(child)
