"""Credentials inside URLs (`nats://user:secret@host`, `redis://:pw@host`) never reach a log line or
the terminal: every text the product prints or logs about a URL or an error goes through here."""

import re

# scheme://[user][:password]@ : the password, or a lone user part that is a token, is masked.
_USERINFO = re.compile(
    r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^\s:/@]*)(?::(?P<password>[^\s/@]*))?@"
)
MASK = "***"


def _masked(match: re.Match[str]) -> str:
    scheme, user, password = match["scheme"], match["user"], match["password"]
    if password is None:
        # `nats://token@host`: a user part alone is a token (NATS token auth).
        return f"{scheme}{MASK}@"
    return f"{scheme}{user}:{MASK}@"


def mask_credentials(text: str) -> str:
    """`text` with the credentials of every URL in it replaced by ***."""
    return _USERINFO.sub(_masked, text) if "@" in text else text


def describe_error(exc: BaseException) -> str:
    """One line for a person: the error's class and message, credentials masked."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__
    return mask_credentials(f"{name}: {message}" if message else name)
