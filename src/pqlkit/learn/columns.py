"""The columns of a learning snapshot, declared once: keys, the decided outputs kept beside
the inputs, the traits, and the labels. Learning, evaluation and the backtest read these."""

from __future__ import annotations

OUTCOMES = {
    "opportunity": "an opportunity is created for the user or their account",
    "closed_won": "an opportunity of the user or their account closes won",
    "self_serve": "the user upgrades by themselves (a self_serve outcome)",
    "any": "any outcome: an opportunity or a self-serve upgrade",
}
#: How each outcome reads in a sentence ("new PQLs to ...").
OUTCOME_NAMES = {
    "opportunity": "opportunity",
    "closed_won": "closed-won",
    "self_serve": "self-serve upgrade",
    "any": "any conversion",
}
#: Which user a row is, and when.
KEYS = ("as_of", "user_id", "account_id")
#: What the model decided for the row (outputs of scoring.decide).
OUTPUTS = (
    "score",
    "fit_score",
    "usage_score",
    "mql_score",
    "is_pql",
    "is_mql",
    "activated",
    "icp_profile",
    "excluded",
    "tier",
    "segment",
    "points",
    "ranking",
)
#: User and account attributes kept as inputs.
TRAITS = ("business_email", "employees", "industry", "days_since_signup")
#: What happened after the date.
LABELS = ("label", "days_to_convert", *(c for o in OUTCOMES for c in (o, f"days_to_{o}")))
#: Outputs that are not inputs to fitting points: scores and flags are what is being learned,
#: and `activated` / `excluded` are PQL gates (they decide the flag, not the score). The ICP
#: profile is an input (a learned step on it becomes a fit signal).
NOT_INPUTS = frozenset({*KEYS, *LABELS, *(c for c in OUTPUTS if c != "icp_profile")})
#: Everything but the signal values (the backtest's "signals" are the rest).
NOT_SIGNALS = frozenset({*KEYS, *OUTPUTS, *TRAITS, *LABELS})
