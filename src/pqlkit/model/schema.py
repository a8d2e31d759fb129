"""The JSON Schema of the model file, generated from the pydantic classes.

A field's description is its attribute docstring (the string under it in the class body). The
classes do not ask pydantic to read those (``use_attribute_docstrings``): it parses the source
of each of sixty classes as they are made, a tenth of a second on every command that loads a
model. They are read here instead, once per module, only when the schema is generated.
"""

from __future__ import annotations

import ast
import inspect
import json
import sys
from functools import cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema

from .spec import SCHEMA_VERSION, Model

SCHEMA_PATH = f"schemas/pql-model-v{SCHEMA_VERSION}.json"


def json_schema() -> dict[str, Any]:
    schema = Model.model_json_schema(by_alias=True, schema_generator=_Documented)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://pqlkit.dev/schemas/pql-model-v{SCHEMA_VERSION}.json"
    return schema


def json_schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


class _Documented(GenerateJsonSchema):
    """Pydantic's generator, with each field described by its attribute docstring where the
    field gives no ``description`` of its own (what ``use_attribute_docstrings`` would do)."""

    def model_schema(self, schema: Any) -> Any:
        out = super().model_schema(schema)
        cls = schema["cls"]
        properties = out.get("properties", {})
        for name, info in cls.model_fields.items():
            key = info.alias or name
            doc = _declared_docstring(cls, name)
            if key in properties and doc and "description" not in properties[key]:
                properties[key]["description"] = doc
        return out


def _declared_docstring(cls: type[BaseModel], name: str) -> str | None:
    """The docstring under ``name`` in the class that declares it (the nearest in the MRO
    with an annotation for it: a redeclared field is a new field, as pydantic makes it)."""
    for klass in cls.__mro__:
        if name in inspect.get_annotations(klass):
            return _attribute_docstrings(klass.__module__).get((klass.__qualname__, name))
    return None


@cache
def _attribute_docstrings(module: str) -> dict[tuple[str, str], str]:
    """(class qualname, attribute) -> its docstring, for every class in ``module``."""
    tree = ast.parse(inspect.getsource(sys.modules[module]))
    found: dict[tuple[str, str], str] = {}

    def visit(body: list[ast.stmt], prefix: str) -> None:
        previous: ast.stmt | None = None
        for node in body:
            if isinstance(node, ast.ClassDef):
                visit(node.body, f"{prefix}{node.name}.")
            elif (
                prefix
                and isinstance(previous, ast.AnnAssign)
                and isinstance(previous.target, ast.Name)
                and isinstance(node, ast.Expr)
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
            ):
                found[(prefix[:-1], previous.target.id)] = inspect.cleandoc(node.value.value)
            previous = node

    visit(tree.body, "")
    return found


if __name__ == "__main__":  # python -m pqlkit.model.schema > schemas/pql-model-v1.json
    print(json_schema_text(), end="")
