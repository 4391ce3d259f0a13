"""`ondevice json`: one query, answered with a JSON value valid against a schema (on stdout)."""

from __future__ import annotations

import argparse
import json
import sys

from ..api import ToolCaller
from ..formats.prompt import check_query
from ..schema.limits import parse_json_body
from ..settings import Settings
from ..structured import OutputSchemaError, content_format
from .options import add_model_options, read_text, settings_from_args

EXAMPLES = """\
examples:
  ondevice json "Plan three days in Rome" --schema trip.schema.json
  ondevice json "John is 31" --schema - < person.schema.json --model qwen2.5-coder-0.5b-instruct

The schema is a JSON Schema file (any draft; '-' for stdin). The grammar enforces it: the value printed
always validates against it. A keyword the grammar cannot enforce is refused before the model loads,
naming the keyword; a --max-tokens budget that ends inside the value is an error saying to raise it.
Exit status 2 on bad input, with a message on stderr.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("json", help="answer one query with a JSON value valid against a schema", description=__doc__,
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("query", help="the question to answer")
    p.add_argument("--schema", "-s", required=True, help="JSON Schema file the answer must follow ('-' for stdin)")
    add_model_options(p, repack=False)
    p.set_defaults(func=run)


def load_schema(source: str, settings: Settings) -> object:
    """The JSON Schema in a file (or stdin for '-'), as a JSON value."""
    text, where = read_text(source, "schema file", OutputSchemaError, "pass a JSON Schema file",
                            limit=settings.max_body_bytes)
    return parse_json_body(text, settings, f"the schema in {where}")


def run(args: argparse.Namespace) -> int:
    check_query(args.query)  # before the model loads
    settings = settings_from_args(args)
    schema = load_schema(args.schema, settings)
    content_format(schema, "schema", settings.max_schema_depth)  # refused keywords fail before the model loads
    caller = ToolCaller.load(args.model, settings)
    if caller.resolved is not None and caller.resolved.note:
        print(caller.resolved.note, file=sys.stderr)
    value = caller.generate_json(args.query, schema, name="schema")
    print(json.dumps(value, ensure_ascii=False))
    return 0
