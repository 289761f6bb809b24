"""From a name as the human wrote it to a Jira accountId, or to a question when several people match."""

from collections.abc import Sequence
from dataclasses import dataclass

from services.ticketing.jira import JiraClient, JiraError, JiraUser

MAX_CANDIDATES_LISTED = 5


@dataclass(frozen=True)
class Assignment:
    """Who the ticket goes to; `account_id` None = nobody, with `note` saying why when one was asked."""

    account_id: str | None = None
    display_name: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class Ambiguous:
    """Several people match `wanted`: the human chooses, and nothing is done meanwhile."""

    wanted: str
    names: tuple[str, ...]


async def resolve_assignee(jira: JiraClient, project_key: str, wanted: str | None) -> Assignment | Ambiguous:
    """The asked-for person among the project's assignable users. A refused lookup leaves the ticket
    unassigned rather than lose it; only transient errors propagate."""
    name = (wanted or "").strip()
    if not name:
        return Assignment()
    try:
        users = await jira.find_assignable_users(project_key, name)
    except JiraError as exc:
        if exc.transient:
            raise
        return Assignment(
            note=f"Could not look up '{name}' in Jira ({exc.message}); the ticket is unassigned."
        )
    return choose_assignee(name, users, project_key)


def choose_assignee(wanted: str, users: Sequence[JiraUser], project_key: str) -> Assignment | Ambiguous:
    """One match wins. Among several (Jira matches prefixes), an exact email, full name or first name
    (case-insensitive) wins if it singles one person out; otherwise the human is asked."""
    if not users:
        return Assignment(
            note=f"Nobody called '{wanted}' can be assigned in {project_key}; the ticket is unassigned."
        )
    if len(users) == 1:
        return _assigned(users[0])
    folded = wanted.casefold()
    tiers = (
        [u for u in users if u.email and u.email.casefold() == folded],
        [u for u in users if u.display_name.casefold() == folded],
        [u for u in users if _first_name(u) == folded],
    )
    for tier in tiers:
        if len(tier) == 1:
            return _assigned(tier[0])
        if tier:
            return _ambiguous(wanted, tier)
    return _ambiguous(wanted, users)


def choice_question(choice: Ambiguous, new_ticket: bool) -> str:
    """The WhatsApp question, with a reply the diagnoser understands as it is."""
    shown = choice.names[:MAX_CANDIDATES_LISTED]
    more = len(choice.names) - len(shown)
    listed = ", ".join(shown) + (f" and {more} more" if more > 0 else "")
    command = f"create {'new ' if new_ticket else ''}jira task and assign to {shown[0]}"
    return f"Several people match '{choice.wanted}': {listed}. Reply `{command}`."


def _first_name(user: JiraUser) -> str:
    words = user.display_name.split()
    return words[0].casefold() if words else ""


def _name(user: JiraUser) -> str:
    return user.display_name or user.account_id


def _assigned(user: JiraUser) -> Assignment:
    return Assignment(account_id=user.account_id, display_name=_name(user))


def _ambiguous(wanted: str, candidates: Sequence[JiraUser]) -> Ambiguous:
    return Ambiguous(wanted=wanted, names=tuple(_name(u) for u in candidates))
