"""What the model costs an incident: tokens in and out, and their price when one is configured.

Prices are the operator's (per 1,000 tokens, as the providers publish them); at 0 no cost is
computed, so nothing shows a guessed figure for a local model or an unknown price list."""

from dataclasses import dataclass

from services.diagnoser import metrics


@dataclass(frozen=True)
class Prices:
    input_per_1k_usd: float = 0.0
    output_per_1k_usd: float = 0.0

    @property
    def known(self) -> bool:
        return self.input_per_1k_usd > 0 or self.output_per_1k_usd > 0


def cost_usd(prices: Prices, tokens_in: int, tokens_out: int) -> float | None:
    """The price of these tokens; None when no price is configured (not 0: nothing was guessed)."""
    if not prices.known:
        return None
    return tokens_in / 1000 * prices.input_per_1k_usd + tokens_out / 1000 * prices.output_per_1k_usd


@dataclass
class Spend:
    """What one investigation (or human turn) spent so far, every model answer added as it comes:
    a failed investigation's tokens are spent all the same."""

    prices: Prices
    tokens_in: int = 0
    tokens_out: int = 0

    def add(self, tokens_in: int, tokens_out: int) -> None:
        self.tokens_in += tokens_in
        self.tokens_out += tokens_out
        metrics.model_tokens.labels(direction="in").inc(tokens_in)
        metrics.model_tokens.labels(direction="out").inc(tokens_out)
        cost = cost_usd(self.prices, tokens_in, tokens_out)
        if cost:
            metrics.model_cost.inc(cost)

    @property
    def tokens(self) -> int:
        return self.tokens_in + self.tokens_out

    @property
    def cost_usd(self) -> float | None:
        return cost_usd(self.prices, self.tokens_in, self.tokens_out)


def over_limit(spent_usd: float | None, limit_usd: float) -> bool:
    """The incident's cost limit is reached. No limit (0) or no price: never."""
    return limit_usd > 0 and spent_usd is not None and spent_usd >= limit_usd
