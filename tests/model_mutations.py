"""Mutated models, as a careless user (or a hostile file) writes them: keys dropped, values of
the wrong type or out of range, kinds swapped, ids duplicated, references broken, numbers that
cannot be scored (NaN, infinities, quoted or not), text-level damage (alias bombs, deep nesting,
huge numbers, quotes and semicolons in names, control characters anywhere) and byte-level damage
(UTF-16 and UTF-32 with and without a byte-order mark, latin-1, a file cut inside a character).
Used by tests/test_fuzz.py."""

from __future__ import annotations

import copy
import random
from typing import Any

import yaml

WEIRD: list[Any] = [
    -1,
    0,
    1,
    0.5,
    -0.0,
    10**30,
    -(10**30),
    1e300,
    float("inf"),
    float("nan"),
    "",
    " ",
    "30x",
    "0d",
    "-5d",
    "99999999999999d",
    "1e9w",
    "0.0001s",
    None,
    [],
    {},
    True,
    'k"e',
    "k'e",
    "a;b",
    "-- c",
    "/* x */",
    "\n",
    "ü💥",
    "a\\b",
    "user.email",
    "account.nope",
    "signal.nope",
    "*",
    "(",
    "[a-",
    "%s%n",
    "x" * 2000,
    ["a", "b"],
    {"field": "account.employees", "gte": 50},
    # numbers that cannot be scored, as text a float parser reads
    "NaN",
    "nan",
    "-Infinity",
    "inf",
    "1e400",
    "1e13",
    # control characters (YAML writes them as escapes in double quotes)
    "a\x00b",
    "\x00",
    "x\x01",
    "\x1b[31m",
    "del\x7f",
    "c1\x85",
    "c1\x9f",
    "line\u2028sep",
    "\\.edu\x00$",
    {"signal": "nope"},
    {"all": []},
    {"any": [{}]},
]
KINDS = [
    "event_count",
    "hand_raise",
    "teammates_invited",
    "active_days",
    "distinct_features",
    "property_threshold",
    "onboarding_completed",
    "limit_reached",
    "recency",
    "trait",
    "nope",
]


def _paths(node: Any, path: tuple = ()) -> list[tuple]:
    out = [path]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*path, i))
    return out


def _get(node: Any, path: tuple) -> Any:
    for p in path:
        node = node[p]
    return node


def _mutate_data(rng: random.Random, data: dict) -> dict:
    data = copy.deepcopy(data)
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        paths = [p for p in _paths(data) if p]
        path = rng.choice(paths)
        parent = _get(data, path[:-1])
        key = path[-1]
        roll = rng.random()
        if roll < 0.2:
            del parent[key]
        elif roll < 0.6:
            parent[key] = copy.deepcopy(rng.choice(WEIRD))
        elif roll < 0.7 and isinstance(parent, dict) and "kind" in parent:
            parent["kind"] = rng.choice(KINDS)
        elif roll < 0.8 and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[key]))  # a duplicate item (duplicate ids)
        elif roll < 0.9 and isinstance(parent, dict):
            parent[
                rng.choice(
                    [
                        "extra",
                        "evnets",
                        "when",
                        "window",
                        "half_life",
                        "per_unit",
                        "cap",
                        "min",
                        "property",
                        "where",
                        "usage",
                        "quotas",
                        "within",
                        "older_than",
                    ]
                )
            ] = copy.deepcopy(rng.choice(WEIRD))
        else:
            value = parent[key]
            if isinstance(value, str):
                parent[key] = value + rng.choice(['"', "'", ";", "\\", "--", "\n", "ü", " ", "."])
            elif isinstance(value, int | float) and not isinstance(value, bool):
                parent[key] = value * rng.choice([-1, 0, 10**9, 1e-9])
    return data


def _deep(depth: int) -> str:
    return "{not: " * depth + "{signal: onboarded}" + "}" * depth


#: Characters a model file must not hold, comments included.
CONTROL = [*(chr(c) for c in range(32) if c not in (9, 10, 13)), "\x7f", "\x85", "\x9f", "\x80"]
CONTROL += ["\u2028", "\u2029", "\ufffe", "\ud800"]
UNSCORABLE = ['"NaN"', ".nan", ".NaN", ".inf", "-.inf", '"-Infinity"', '"1e400"', "'inf'"]


def _bytes(rng: random.Random, text: str) -> bytes:
    """The file's bytes: mostly UTF-8, sometimes another encoding or damaged."""
    roll = rng.random()
    if roll < 0.85 or "\ud800" in text or "\udcff" in text:
        try:  # \udcff stands for the byte 0xff
            return text.encode("utf-8", errors="surrogateescape")
        except UnicodeEncodeError:  # \ud800 becomes the bytes ed a0 80, not UTF-8 either
            return text.encode("utf-8", errors="surrogatepass")
    encoding = rng.choice(
        ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-8-sig", "latin-1", "cut", "bom"]
    )
    if encoding == "cut":  # cut anywhere, inside a character too
        raw = text.replace("starter", "stärter💥", 1).encode()
        return raw[: rng.randrange(len(raw) + 1)]
    if encoding == "bom":  # a byte-order mark and nothing, or garbage after it
        return rng.choice([b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b"\xff\xfe\x00"])
    if encoding == "latin-1":
        return text.replace("starter", "stärter", 1).encode("latin-1", errors="replace")
    if encoding.endswith(("-le", "-be")) and rng.random() < 0.5:  # with a byte-order mark
        text = "\ufeff" + text
    return text.encode(encoding, errors="surrogatepass")


def mutate(rng: random.Random, text: str) -> bytes:
    """A mutated model file, as bytes."""
    return _bytes(rng, _mutate_text(rng, text))


def _mutate_text(rng: random.Random, text: str) -> str:
    roll = rng.random()
    if roll < 0.08:  # a control character anywhere: a comment, a key, a value, a line's start
        at = rng.randrange(len(text) + 1)
        return text[:at] + rng.choice(CONTROL) + text[at:]
    if roll < 0.12:  # a number that cannot be scored
        old = rng.choice(["points: 10", "pql_score: 60", "cap: 20", "gte: 1000", "min: 3"])
        return text.replace(old, old.split(":")[0] + ": " + rng.choice(UNSCORABLE), 1)
    roll = rng.random()
    if roll < 0.04:  # an alias bomb
        bomb = "bomb:\n  a: &a [x, x, x, x, x, x, x, x, x, x]\n"
        for i in range(1, 12):
            prev = chr(ord("a") + i - 1)
            name = chr(ord("a") + i)
            bomb += f"  {name}: &{name} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
        return text + "\n" + bomb
    if roll < 0.08:  # deep nesting
        return text.replace(
            "    - {signal: onboarded}", "    - " + _deep(rng.choice([50, 200, 2000, 20000]))
        )
    if roll < 0.1:  # deep YAML lists
        return text + "\nextra: " + "[" * 5000 + "]" * 5000 + "\n"
    if roll < 0.12:  # a huge number
        return text.replace("pql_score: 60", "pql_score: " + "9" * rng.choice([20, 400, 5000]))
    if roll < 0.14:  # bytes that are not UTF-8, tabs, a stray document
        return text.replace(
            "name: starter",
            rng.choice(["name: st\udcffarter", "\tname: starter", "name: starter\n---\nx: 1"]),
        )
    data = yaml.safe_load(text)
    return yaml.safe_dump(_mutate_data(rng, data), sort_keys=False, allow_unicode=True)
