"""Token counts for tool output, without the tokenizer's vocabulary file.

tiktoken downloads o200k_base on first use, which air-gapped installs (and CI) cannot do, and
no PyPI package ships that file. So tool output is measured with an approximation of o200k:

1. Split the text the way o200k's pre-tokenizer does, simplified: a run of letters with at most
   one leading non-letter (a space, a quote; camelCase split before each capital), a run of at
   most 3 digits, a run of punctuation with an optional leading space, a run of whitespace, any
   other single character. BPE never merges across pre-tokens, so each piece is at least one
   token.
2. Charge each piece one token per 4 ASCII characters (at least one), and one token per
   non-ASCII character.

Calibration (what the rule assumes, piece by piece; not measured against o200k here, since the
file cannot be fetched):
- digit runs are exact: o200k has every 1..3-digit string as one token, and the split cuts
  longer numbers into such runs (`1795500262` -> 4 pieces -> 4 tokens);
- hex ids and UUIDs are near-exact: letters and digits alternate, so they fall into 1-2
  character pieces, one token each (`3fa2b1c4` -> 8);
- English words are over-counted: o200k averages ~4 characters per token on prose, but most
  words up to ~10 letters are a single token, which rule 2 charges 2-3 (` exception` -> 3);
- CJK and emoji are charged one token per character, about what o200k spends on them.
The error is on the safe side for log text: an output under the budget here is under it for
the model. On the reference incident of bench/tools.py (JSON log lines dense with ids, IPs and
numbers) the estimate comes to 2.25 characters per token for the raw lines and 2.3 for the
compressed output.
"""

from __future__ import annotations

import math
import re

_PIECE = re.compile(r"[^\w\r\n]?(?:[A-Z]*[a-z]+|[A-Z]+)|\d{1,3}| ?[^\s\w]+|\s+|_+|\w")
ASCII_CHARS_PER_TOKEN = 4


def _wide_piece_cost(piece: str) -> int:
    wide = sum(1 for char in piece if not char.isascii())
    return max(1, math.ceil((len(piece) - wide) / ASCII_CHARS_PER_TOKEN) + wide)


def estimate_tokens(text: str) -> int:
    """An upper-leaning estimate of the o200k_base token count of `text` (see the module doc)."""
    pieces = _PIECE.findall(text)
    if text.isascii():  # the usual case, kept to arithmetic: it runs over every line of output
        return sum([(n + ASCII_CHARS_PER_TOKEN - 1) // ASCII_CHARS_PER_TOKEN for n in map(len, pieces)])
    return sum(_wide_piece_cost(piece) for piece in pieces)
