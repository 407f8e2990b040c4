"""A strict validator of JSON values against the schemas of a Google discovery
document (here Gmail's, the source of truth for resource shapes).

Checks types, ``$ref``, arrays, ``additionalProperties``, unknown properties
(an error: a field Google does not define is a field no real client expects),
enums, and the string formats Google encodes specially: ``int64``/``uint64``
as decimal strings in range, ``byte`` as base64url, ``date-time``/
``google-datetime`` as RFC 3339; ``int32``/``uint32`` integers in range.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.support.samples import SAMPLES

_B64URL = re.compile(r"^[A-Za-z0-9_-]*={0,2}$")
_RANGES = {
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint64": (0, 2**64 - 1),
}


class SchemaError(AssertionError):
    pass


class Discovery:
    def __init__(self, path: Path = SAMPLES / "gmail.v1.discovery.json") -> None:
        self.document = json.loads(path.read_text())
        self.schemas: dict[str, Any] = self.document["schemas"]

    def validate(self, value: Any, schema: str) -> None:
        """Raise SchemaError naming the JSON path of the first violation."""
        if schema not in self.schemas:
            raise KeyError(f"the discovery document has no schema {schema}")
        self._check(value, {"$ref": schema}, schema)

    def _check(self, value: Any, schema: dict[str, Any], path: str) -> None:
        if "$ref" in schema:
            self._check(value, self.schemas[schema["$ref"]], path)
            return
        kind = schema.get("type")
        if kind == "object":
            self._object(value, schema, path)
        elif kind == "array":
            if not isinstance(value, list):
                raise SchemaError(f"{path}: expected an array, got {type(value).__name__}")
            for index, item in enumerate(value):
                self._check(item, schema.get("items", {}), f"{path}[{index}]")
        elif kind == "string":
            self._string(value, schema, path)
        elif kind == "integer":
            if not isinstance(value, int) or isinstance(value, bool):
                raise SchemaError(f"{path}: expected an integer, got {value!r}")
            low, high = _RANGES.get(schema.get("format", "int32"), _RANGES["int64"])
            if not low <= value <= high:
                raise SchemaError(f"{path}: {value} out of {schema.get('format')} range")
        elif kind == "number":
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise SchemaError(f"{path}: expected a number, got {value!r}")
        elif kind == "boolean":
            if not isinstance(value, bool):
                raise SchemaError(f"{path}: expected a boolean, got {value!r}")
        elif kind == "any" or kind is None:
            return
        else:
            raise SchemaError(f"{path}: unsupported schema type {kind}")

    def _object(self, value: Any, schema: dict[str, Any], path: str) -> None:
        if not isinstance(value, dict):
            raise SchemaError(f"{path}: expected an object, got {type(value).__name__}")
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if key in properties:
                self._check(item, properties[key], f"{path}.{key}")
            elif extra is not None:
                self._check(item, extra, f"{path}.{key}")
            else:
                raise SchemaError(f"{path}: unknown property {key!r}")

    def _string(self, value: Any, schema: dict[str, Any], path: str) -> None:
        if not isinstance(value, str):
            raise SchemaError(f"{path}: expected a string, got {value!r}")
        if "enum" in schema and value not in schema["enum"]:
            raise SchemaError(f"{path}: {value!r} not one of {schema['enum']}")
        fmt = schema.get("format")
        if fmt in ("int64", "uint64"):
            if not re.fullmatch(r"-?\d+", value):
                raise SchemaError(f"{path}: {fmt} must be a decimal string, got {value!r}")
            low, high = _RANGES[fmt]
            if not low <= int(value) <= high:
                raise SchemaError(f"{path}: {value} out of {fmt} range")
        elif fmt == "byte":
            if not _B64URL.fullmatch(value):
                raise SchemaError(f"{path}: not base64url: {value[:40]!r}")
            try:
                base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
            except (binascii.Error, ValueError):
                raise SchemaError(f"{path}: undecodable base64url") from None
        elif fmt in ("date-time", "google-datetime"):
            try:
                datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise SchemaError(f"{path}: not RFC 3339: {value!r}") from None
