"""Compiled tool-call grammars, cached per tools and options, and the matchers made from them."""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any, Optional, Sequence

from llguidance import LLMatcher

from ..errors import ToolSchemaError
from ..formats.grammar import compile_grammar, explain_grammar_error, tool_over_step_limit
from ..grammar.calls import DEFAULT_OPTIONS, CallOptions, grammar_limits
from ..schema.limits import check_tool_limits
from ..settings import Settings
from ..schema.tools import Tool, normalize_tools
from .vocabulary import Vocabulary


def check_tools(tools: Optional[Sequence[Any]], settings: Settings,
                options: CallOptions = DEFAULT_OPTIONS) -> tuple[list[Tool], str]:
    """The tools normalized and their compiled grammar; a ToolSchemaError naming the tool and the
    path when they are malformed or cannot be satisfied, an InputLimitError when they are over a
    limit of `settings`, a ToolChoiceError when `options` cannot be met. Needs no model: check
    before loading one."""
    check_tool_limits(tools, settings)
    return compile_tools(tools, settings, options)


def compile_tools(tools: Optional[Sequence[Any]], settings: Settings, options: CallOptions) -> tuple[list[Tool], str]:
    """`check_tools` after its limits were checked."""
    normalized = normalize_tools(tools)
    return normalized, compile_grammar(normalized, grammar_limits(settings), options.capped(settings.max_calls))


class GrammarCache:
    """The last `size` compiled grammars, keyed by tools, grammar limits and options."""

    def __init__(self, vocabulary: Vocabulary, size: int = 32):
        self.vocabulary = vocabulary
        self.size = size
        self._entries: "OrderedDict[str, tuple[list[Tool], str]]" = OrderedDict()

    def compile(self, tools: Optional[Sequence[Any]], s: Settings,
                options: CallOptions = DEFAULT_OPTIONS) -> tuple[list[Tool], str]:
        """(tools normalized, grammar) for a call with settings `s` and completed `options`."""
        check_tool_limits(tools, s)  # before json.dumps below: a deep list would overflow its recursion
        options = options.capped(s.max_calls)
        limits = (s.grammar_compile_fuel, s.grammar_step_fuel, s.grammar_max_size)
        key = json.dumps([tools, limits, options.key()], sort_keys=True, default=str)
        hit = self._entries.get(key)
        if hit is None:
            hit = compile_tools(tools, s, options)
            self._entries[key] = hit
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        else:
            self._entries.move_to_end(key)
        return hit

    def matcher(self, normalized: list[Tool], grammar: str, s: Settings,
                options: CallOptions = DEFAULT_OPTIONS) -> LLMatcher:
        """A fresh matcher for one answer; a ToolSchemaError naming the tool when llguidance refuses it."""
        tokenizer = self.vocabulary.lltokenizer()
        matcher = LLMatcher(tokenizer, grammar, log_level=2 if s.verbose else 0, limits=grammar_limits(s))
        if matcher.is_error():
            raise explain_grammar_error(normalized, tokenizer, s, matcher.get_error(), options)
        return matcher

    def step_limit_error(self, matcher: LLMatcher, normalized: list[Tool], text: str, s: Settings,
                         options: CallOptions) -> ToolSchemaError:
        """The error for a mask computation over grammar_step_fuel, naming the tool being written
        (in the call's own format: `options`)."""
        name = tool_over_step_limit(text, normalized, self.vocabulary.lltokenizer(), s, options)
        return ToolSchemaError(
            f"tool {name!r}: computing its grammar's next-token mask went over the limit "
            f"({matcher.get_error().splitlines()[0]}; setting grammar_step_fuel={s.grammar_step_fuel}): simplify its "
            "schema (long or nested patterns, large enums) or raise grammar_step_fuel"
        )
