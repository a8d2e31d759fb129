"""Who lives in the demo world: accounts with a fit for the product, and their users with a
latent buying intent drawn from that fit, their role and noise (see `generate`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .vocabulary import (
    COMPETITORS,
    CORE_INDUSTRIES,
    FIRST,
    FREE_MAIL,
    INDUSTRIES,
    INDUSTRY_P,
    LAST,
    ROLE_P,
    ROLES,
    SENIOR,
    STACK,
    STACK_P,
    SUFFIX,
    WORDS,
)

Array = np.ndarray


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


@dataclass(frozen=True)
class Span:
    """The days the world's events fall on: day 0 is `base` (the window's start), day `days` is
    `end`; users signed up as early as 30 days before the window."""

    base: np.datetime64
    end: np.datetime64
    days: int

    def at(self, rng: np.random.Generator, day: Array) -> Array:
        """A timestamp at a random second of each day."""
        return self.base + (day * 86400 + rng.integers(0, 86400, day.size)).astype("timedelta64[s]")


@dataclass(frozen=True)
class Accounts:
    employees: Array
    industry: Array
    names: Array
    domains: Array
    plan: Array
    seats: Array
    tech: list[list[str]]
    fit: Array
    """How well the account fits the product (size, industry, stack); users' intent starts here."""


@dataclass(frozen=True)
class Users:
    acct: Array
    """Each user's account, as an index into the accounts."""
    role: Array
    emails: Array
    email_domain: Array
    personal: Array
    student: Array
    signup_day: Array
    signup_at: Array
    intent: Array
    """The latent buying intent the rest of the world follows."""
    engagement: Array


def accounts(rng: np.random.Generator, n_a: int) -> Accounts:
    employees = np.clip(np.round(np.exp(rng.normal(3.6, 1.6, n_a))), 1, 50_000).astype(np.int64)
    industry = rng.choice(INDUSTRIES, n_a, p=INDUSTRY_P)
    w1, w2, sfx = rng.choice(WORDS, n_a), rng.choice(WORDS, n_a), rng.choice(SUFFIX, n_a)
    names = np.char.add(
        np.char.add(np.char.capitalize(w1), np.char.capitalize(w2)),
        np.char.add(" ", np.char.capitalize(sfx)),
    )
    domains = np.array([f"{a}{b}{i}.com" for i, (a, b) in enumerate(zip(w1, w2, strict=True))])
    competitor = rng.random(n_a) < 0.004
    domains[competitor] = rng.choice(COMPETITORS, int(competitor.sum()))
    plan = np.where(
        rng.random(n_a) < np.where(employees >= 1000, 0.12, 0.005), "enterprise", "free"
    )
    seats = np.maximum(1, np.round(employees * rng.uniform(0.02, 0.2, n_a))).astype(np.int64)
    stack_mask = rng.random((n_a, len(STACK))) < STACK_P
    tech = [list(STACK[row]) for row in stack_mask]
    fit = (
        0.9 * ((employees >= 50) & (employees < 1000))
        + 0.5 * (employees >= 1000)
        + 0.6 * np.isin(industry, list(CORE_INDUSTRIES))
        + 0.3 * (stack_mask[:, 0] | stack_mask[:, 1])
        - 0.8 * (employees < 5)
    )
    return Accounts(employees, industry, names, domains, plan, seats, tech, fit)


def users(rng: np.random.Generator, accounts: Accounts, n_u: int, span: Span) -> Users:
    n_a = accounts.employees.size
    weights = np.log1p(accounts.employees).astype(float)
    acct = rng.choice(n_a, n_u, p=weights / weights.sum())
    acct[: min(n_a, n_u)] = np.arange(min(n_a, n_u))  # every account has a user
    role = rng.choice(ROLES, n_u, p=ROLE_P)
    first, last = rng.choice(FIRST, n_u), rng.choice(LAST, n_u)
    local = np.char.add(np.char.add(first, "."), last)
    local = np.char.add(local, np.arange(n_u).astype(str))
    personal = rng.random(n_u) < 0.14
    email_domain = np.where(personal, rng.choice(FREE_MAIL, n_u), accounts.domains[acct])
    student = role == "Student"
    email_domain = np.where(student, "state-university.edu", email_domain)
    emails = np.char.add(np.char.add(local, "@"), email_domain)
    signup_day = rng.integers(-30, span.days - 2, n_u)
    signup_at = span.at(rng, signup_day)
    senior = np.isin(role, list(SENIOR))
    intent = (
        accounts.fit[acct]
        + 0.7 * senior
        - 1.5 * student
        - 0.7 * personal
        + rng.normal(0, 1.0, n_u)
        - 0.6
    )
    engagement = sigmoid(intent + rng.normal(0, 0.6, n_u))
    return Users(
        acct, role, emails, email_domain, personal, student, signup_day, signup_at, intent,
        engagement,
    )  # fmt: skip
