"""Building blocks shared by the parts of the OpenAPI document (api/openapi_*.py)."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]
JSON = "application/json"
TIME = {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}]}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def json_response(schema: Schema, description: str, headers: Schema | None = None) -> Schema:
    response: Schema = {"description": description, "content": {JSON: {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


def error_response(name: str) -> Schema:
    return {"$ref": f"#/components/responses/{name}"}
