"""Units stay small: no function in src/pqlkit over 80 lines unless its docstring says why.

A long function usually mixes concerns (issue 25, item 7). One that is long for a reason says so in
a docstring line starting "Long because"; the few that were long before this test and are being
split are listed below with who is splitting them, and leave the list once they are split.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pqlkit

SRC = Path(pqlkit.__file__).resolve().parent
LIMIT = 80
REASON = "Long because"

# Long before this test, each with who is splitting it: remove a name once it is split (the
# last test below fails while a name here is short already).
LONG_TODAY = {}


def long_functions(source: str, limit: int = LIMIT) -> dict[str, int]:
    """Qualified name -> length in lines (from `def` to the last line) of each function, method
    or nested function over ``limit`` lines whose docstring gives no reason."""
    out: dict[str, int] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = prefix + child.name
                lines = (child.end_lineno or child.lineno) - child.lineno + 1
                doc = ast.get_docstring(child) or ""
                explained = any(line.strip().startswith(REASON) for line in doc.splitlines())
                if lines > limit and not explained:
                    out[name] = lines
                visit(child, f"{name}.")
            else:
                visit(child, prefix)

    visit(ast.parse(source), "")
    return out


def _long_in_src() -> dict[str, int]:
    out: dict[str, int] = {}
    for path in sorted(SRC.rglob("*.py")):
        where = path.relative_to(SRC).as_posix()
        for name, lines in long_functions(path.read_text()).items():
            out[f"{where}:{name}"] = lines
    return out


def test_the_check_finds_a_long_function_and_accepts_a_reason():
    body = "\n".join(f"    x{i} = {i}" for i in range(LIMIT))
    source = (
        f"def short():\n    return 1\n\n"
        f"def plain():\n{body}\n\n"
        f"class Box:\n    def method(self):\n{body.replace('    ', '        ')}\n\n"
        f"def outer():\n    def inner():\n{body.replace('    ', '        ')}\n    return inner\n\n"
        f'def explained():\n    """Does one thing.\n\n    Long because a table of cases reads best'
        f' whole."""\n{body}\n'
    )
    assert long_functions(source) == {
        "plain": LIMIT + 1,
        "Box.method": LIMIT + 1,
        "outer": LIMIT + 3,
        "outer.inner": LIMIT + 1,
    }


def test_no_function_over_80_lines_without_a_reason():
    unexplained = {name: lines for name, lines in _long_in_src().items() if name not in LONG_TODAY}
    assert not unexplained, (
        f"functions over {LIMIT} lines: split them where they mix concerns, or start a line of "
        f'the docstring with "{REASON}" and say why: '
        + ", ".join(f"{name} ({lines} lines)" for name, lines in sorted(unexplained.items()))
    )


def test_the_list_of_long_functions_holds_only_long_ones():
    long_now = _long_in_src()
    split = sorted(name for name in LONG_TODAY if name not in long_now)
    assert not split, (
        f"no longer over {LIMIT} lines (or gone): remove from LONG_TODAY in tests/test_units.py: "
        + ", ".join(split)
    )
