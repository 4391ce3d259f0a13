"""An answer's grammar in its tool format: the Lark source the format builds from the grammar rules
(grammar/calls.py), compiled for llguidance, and the tool a refusal is about when llguidance refuses it."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Optional, Sequence

from llguidance import LLMatcher, LLParserLimits, LLTokenizer

from ..errors import ToolChoiceError, ToolSchemaError
from ..grammar.calls import DEFAULT_OPTIONS, CallOptions, content_rule, grammar_limits, is_limit_error
from .tags import OPEN
from ..schema.refs import check_refs
from ..schema.tools import Tool
from ..settings import Settings
from ..structured import OutputSchemaError
from .registry import get_format

_LISTING = re.compile(r"^\s*\d+ \| ")  # llguidance's grammar listing: "   5 | call_0: ..."
_POSITION = re.compile(r"^at \d+\(\d+\): ")


def tool_call_lark(tools: Sequence[Tool], options: CallOptions = DEFAULT_OPTIONS) -> str:
    """The Lark source of the grammar for these tools, in the options' tool format (no tools: only
    the empty answer)."""
    tools = options.callable_tools(tools)
    if options.min_calls and not tools:
        raise ToolChoiceError(f"at least {options.min_calls} call(s) required, but no tool is given")
    return get_format(options.tool_format).lark(tools, options)


def compile_grammar(tools: Sequence[Tool], limits: Optional[LLParserLimits] = None,
                    options: CallOptions = DEFAULT_OPTIONS) -> str:
    """The serialized llguidance grammar; a schema that points nowhere, cannot be satisfied, that
    llguidance refuses or that is over `limits` names the tool (llguidance's grammar listing goes to
    the error's details). `options` bounds the calls (OpenAI's tool_choice)."""
    for tool in tools:
        check_refs(tool.name, tool.grammar_schema)
    grammar = LLMatcher.grammar_from_lark(tool_call_lark(tools, options))
    is_error, messages = LLMatcher.validate_grammar_with_warnings(grammar, limits=limits)
    if is_error:
        raise _name_the_tool(tools, None, limits, "\n".join(messages), options)
    return grammar


def explain_grammar_error(tools: Sequence[Tool], tokenizer: LLTokenizer, settings: Settings, message: str,
                          options: Optional[CallOptions] = None) -> ToolSchemaError:
    """The error for a grammar llguidance refused when building it for the vocabulary, naming the tool."""
    return _name_the_tool(tools, tokenizer, grammar_limits(settings), message, options)


def _name_the_tool(tools: Sequence[Tool], tokenizer: Optional[LLTokenizer], limits: Optional[LLParserLimits],
                   message: str, options: Optional[CallOptions] = None) -> ToolSchemaError:
    hint = (" (over a limit: simplify the schema, or raise the settings grammar_compile_fuel / grammar_max_size)"
            if is_limit_error(message) else "")
    content = options.content if options is not None else None
    subjects = ([(f"response format {content.name!r}: the grammar compiler refused its schema",
                  "start: content\n" + content_rule(content) + "\n", OutputSchemaError)] if content is not None else [])
    one = replace(_one_tool(options), content=None)
    subjects += [(f"tool {tool.name!r}: the grammar compiler refused its parameters", tool_call_lark([tool], one),
                  ToolSchemaError) for tool in tools]
    for what, lark, error in subjects:  # find which schema was refused, to say so
        alone = LLMatcher.grammar_from_lark(lark)
        if tokenizer is None:
            bad, why = LLMatcher.validate_grammar_with_warnings(alone, limits=limits)
            reason = "\n".join(why)
        else:
            matcher = LLMatcher(tokenizer, alone, log_level=0, limits=limits)
            bad, reason = matcher.is_error(), matcher.get_error()
        if bad:
            return error(f"{what}: {_first_lines(reason)}{hint}", details=reason)
    return ToolSchemaError(f"the tool-call grammar does not compile: {_first_lines(message)}{hint}", details=message)


def _one_tool(options: Optional[CallOptions]) -> CallOptions:
    """The options for one tool's grammar alone (to find which tool a refusal is about)."""
    return replace(options or DEFAULT_OPTIONS, min_calls=0, allowed=None)


def _first_lines(message: str) -> str:
    """llguidance's reasons without the listing of the grammar that follows them."""
    reasons = []
    for line in message.splitlines():
        if _LISTING.match(line):
            break
        if line.strip() and line.strip() != "^":
            reasons.append(_POSITION.sub("", line.strip()))
    return "; ".join(reasons)


def tool_over_step_limit(text: str, tools: Sequence[Tool], tokenizer: LLTokenizer, settings: Settings,
                         options: Optional[CallOptions] = None) -> str:
    """Which tool's grammar went over the per-mask limit: the call begun in the generated `text`, else the
    first tool whose grammar alone goes over it at its first mask (for the error message)."""
    begun = re.findall(r'"name": "((?:[^"\\]|\\.)*)"', text)
    if begun:
        return begun[-1]
    for tool in tools:
        matcher = LLMatcher(tokenizer, LLMatcher.grammar_from_lark(tool_call_lark([tool], _one_tool(options))), log_level=0,
                            limits=grammar_limits(settings))
        for _ in range(len(OPEN) + 1):  # through "<tool_call>[" to the first choice
            if matcher.is_error() or matcher.is_stopped():
                break
            forced = matcher.compute_ff_tokens()
            if not forced:
                matcher.compute_bitmask()
                break
            matcher.consume_tokens(forced)
        if matcher.is_error():
            return tool.name
    return tools[0].name if len(tools) == 1 else "?"
