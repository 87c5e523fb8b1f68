"""The JSON Schema of scenario files (``cssim schema``), for editors: completion, and no false alarms.

A file that ``extends`` another holds only the fields it changes, so it is checked against the same schema with
nothing required (``if`` the file has ``extends`` ``then`` the partial schema ``else`` the full one). Shipped
scenarios name the schema on their first line, ``# yaml-language-server: $schema=scenario.schema.json``, which
the YAML language server (VS Code's YAML extension and others) reads.
"""

from __future__ import annotations

import copy
from typing import Any

from .scenario import Scenario

__all__ = ["SCHEMA_FILE", "SCHEMA_LINE", "scenario_schema"]

#: The schema's file name beside the shipped scenarios, and the line that points an editor at it.
SCHEMA_FILE = "scenario.schema.json"
SCHEMA_LINE = f"# yaml-language-server: $schema={SCHEMA_FILE}"
DIALECT = "https://json-schema.org/draft/2020-12/schema"
EXTENDS = {
    "type": "string",
    "description": "another scenario file (relative to this one) whose fields this file overrides; "
    "a file that extends another needs only the fields it changes",
}


def _partial(node: Any, prefix: str) -> Any:
    """``node`` with nothing required, its references pointing at the partial definitions."""
    if isinstance(node, dict):
        out = {k: _partial(v, prefix) for k, v in node.items() if k != "required"}
        ref = out.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            out["$ref"] = f"#/$defs/{prefix}{ref.removeprefix('#/$defs/')}"
        return out
    if isinstance(node, list):
        return [_partial(v, prefix) for v in node]
    return node


#: Shorthands the schema's validators accept beside the documented form (a sensitivity field as [low, high]).
RANGE = {"type": "array", "prefixItems": [{"type": "number"}, {"type": "number"}], "minItems": 2, "maxItems": 2,
         "description": "[low, high]: a uniform range (of integers if both bounds are)"}


def _shorthands(defs: dict) -> None:
    fields = defs.get("SensitivitySpec", {}).get("properties", {}).get("fields", {})
    if "additionalProperties" in fields:
        fields["additionalProperties"] = {"anyOf": [fields["additionalProperties"], RANGE]}


def scenario_schema() -> dict:
    """The JSON Schema (2020-12) a scenario file validates against: the whole schema, or, for a file with
    ``extends``, the same fields with none required."""
    full = Scenario.model_json_schema()
    defs = full.pop("$defs", {})
    _shorthands(defs)
    full.setdefault("properties", {})["extends"] = EXTENDS
    partial = _partial(copy.deepcopy(full), "Partial")
    partial["required"] = ["extends"]
    all_defs = {**defs, **{f"Partial{name}": _partial(d, "Partial") for name, d in defs.items()},
                "Scenario": full, "PartialScenario": partial}
    return {
        "$schema": DIALECT,
        "$id": "https://cssim.invalid/scenario.schema.json",
        "title": "cssim scenario",
        "description": full.get("description", ""),
        "type": "object",
        # For completion: editors offer these keys at the top level; validation is the branch below.
        "properties": _partial(copy.deepcopy(full["properties"]), "Partial"),
        "$defs": all_defs,
        "if": {"type": "object", "required": ["extends"]},
        "then": {"$ref": "#/$defs/PartialScenario"},
        "else": {"$ref": "#/$defs/Scenario"},
    }
