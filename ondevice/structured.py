"""Structured outputs: an answer that is one JSON value valid against a caller's JSON Schema.

The schema goes through the same code as a tool's parameters (schema/tools.py reads it as JSON Schema
2020-12, the judge; schema/grammar_schema.py builds the subset the grammar enforces, refusing what it
cannot enforce with the place and the keyword), and the grammar is the tool-call grammar's with a
``content`` rule (``%json`` of that subset) where a sentence would stand (grammar/calls.py). The decode is
the tool-call decode; the answer is parsed and validated against the caller's schema here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Optional

from .errors import GrammarStateError, ToolSchemaError
from .schema.json_value import check_json_value
from .schema.limits import check_schema_depth
from .settings import MAX_SCHEMA_DEPTH
from .schema.grammar_schema import enforceable
from .schema.refs import check_refs
from .schema.tools import schema_validator, to_json_schema

_TOOL = re.compile(r"^tool '((?:[^'\\]|\\.)*)'")


class OutputSchemaError(ToolSchemaError):
    """A response format's schema is malformed or uses a keyword the grammar cannot enforce."""


@dataclass(frozen=True)
class ContentFormat:
    """A checked response schema: `judge` (the caller's schema as JSON Schema 2020-12, which every
    answer is validated against) and `enforced` (what the grammar enforces, a subset), both as JSON
    text so that the format is hashable and keys a grammar cache."""

    name: str
    judge: str
    enforced: str

    @cached_property
    def schema(self) -> Any:
        return json.loads(self.judge)

    @cached_property
    def grammar_schema(self) -> Any:
        return json.loads(self.enforced)


def content_format(schema: Any, name: str = "response", max_depth: int = MAX_SCHEMA_DEPTH) -> ContentFormat:
    """Check a response JSON Schema (any type at the root; True: any value) and build what the
    grammar enforces; an OutputSchemaError naming `name`, the place and the keyword otherwise, an
    InputLimitError when it nests deeper than `max_depth` (the setting max_schema_depth)."""
    check_schema_depth(schema, max_depth, f"response format {name!r}", "response_format")
    check_json_value(schema, "schema", OutputSchemaError, f"response format {name!r}", field="response_format")

    if schema is True:
        schema = {}
    if not isinstance(schema, dict):
        raise OutputSchemaError(f"response format {name!r}: expected the schema to be a JSON Schema object, got "
                                f"{type(schema).__name__}")
    try:
        judge = to_json_schema(schema, name)
        enforced = enforceable(judge, name)
        check_refs(name, enforced)
    except ToolSchemaError as exc:
        raise _renamed(exc, name) from None
    return ContentFormat(name, json.dumps(judge, sort_keys=True), json.dumps(enforced, sort_keys=True))


def _renamed(exc: ToolSchemaError, name: str) -> OutputSchemaError:
    """The tool-schema error reworded for a response format ("tool 'x', at parameters" -> "response
    format 'x', at schema")."""
    message = _TOOL.sub(f"response format {name!r}", str(exc), count=1).replace(" at parameters", " at schema", 1) \
        .replace("the parameters has", "the schema has")
    return OutputSchemaError(message, details=exc.details)


def instruction(fmt: ContentFormat) -> str:
    """The system text that tells the model what to write (the grammar enforces it either way)."""
    return ("Answer with a single JSON value and nothing else. It must be valid against this JSON Schema:\n"
            + json.dumps(fmt.schema, ensure_ascii=False))


def with_instruction(messages: list[dict[str, Any]], fmt: ContentFormat) -> list[dict[str, Any]]:
    """`messages` with the schema instruction appended to the system message (one is added first if none)."""
    text = instruction(fmt)
    if messages and messages[0].get("role") == "system":
        head = dict(messages[0])
        head["content"] = (str(head.get("content") or "") + "\n\n" + text).strip()
        return [head] + list(messages[1:])
    return [{"role": "system", "content": text}] + list(messages)


def parse_content(text: str, fmt: ContentFormat) -> Any:
    """The JSON value of a constrained answer, validated against the caller's schema (a
    GrammarStateError if it is not: the grammar guarantees it is)."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise GrammarStateError(f"the constrained JSON answer does not parse ({exc}): a bug, please report it with "
                                "the schema", details=f"text: {text!r}") from None
    problems = [e.message for e in schema_validator(fmt.judge).iter_errors(value)]
    if problems:
        raise GrammarStateError(f"the constrained JSON answer failed validation: {problems[:3]} (a bug: please "
                                "report it with the schema)", details=f"text: {text!r}")
    return value


def schema_of(target: Any) -> tuple[Any, Optional[Any]]:
    """(JSON Schema, pydantic model or None) for a schema dict or a pydantic model class."""
    if isinstance(target, type) and hasattr(target, "model_json_schema") and hasattr(target, "model_validate"):
        return target.model_json_schema(), target
    return target, None
