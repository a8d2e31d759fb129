"""The JSON Schema of the model file, generated from the pydantic classes."""

from __future__ import annotations

import json
from typing import Any

from .spec import SCHEMA_VERSION, Model

SCHEMA_PATH = f"schemas/pql-model-v{SCHEMA_VERSION}.json"


def json_schema() -> dict[str, Any]:
    schema = Model.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://pqlkit.dev/schemas/pql-model-v{SCHEMA_VERSION}.json"
    return schema


def json_schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":  # python -m pqlkit.model.schema > schemas/pql-model-v1.json
    print(json_schema_text(), end="")
