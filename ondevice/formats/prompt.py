"""The prompt layer: the model card's system prompt, user template and `prepare_messages`.

These strings are the fine-tune's trained interface and are reproduced verbatim from the model card
(including the trailing spaces at the end of its first three lines).
"""

from __future__ import annotations

import json
from typing import Any, Optional

from ..errors import EmptyQueryError, QueryError
from .blocks import CARD

SYSTEM_PROMPT = """
You are an expert in composing functions. You are given a question and a set of possible functions. 
Based on the question, you will need to make one or more function/tool calls to achieve the purpose. 
If none of the functions can be used, point it out and refuse to answer. 
If the given question lacks the parameters required by the function, also point it out.

The output MUST strictly adhere to the following format, and NO other text MUST be included.
The example format is as follows. Please make sure the parameter type is correct. If no function call is needed, please make the tool calls an empty list '[]'.
```
<tool_call>[
{"name": "func_name1", "arguments": {"argument1": "value1", "argument2": "value2"}},
... (more tool calls as required)
]</tool_call>
```
""".strip()

# The card writes this template with a trailing newline, but renders it with jinja2's Template, which
# drops one trailing newline by default; the chat template trims the content anyway. So the user turn
# ends with the query itself.
USER_TEMPLATE = "You have access to the following tools:\n<tools>{tools}</tools>\n\nPlease answer the following query:\n{query}"

Message = dict[str, str]


def render_user_prompt(query: str, tools: Optional[list[Any]] = None) -> str:
    """The first user turn: the tools exactly as passed (``json.dumps`` of the raw list), then the query."""
    return USER_TEMPLATE.format(tools=json.dumps(tools if tools is not None else []), query=query)


def check_query(query: str) -> str:
    """Reject an empty, non-string or non-UTF-8 query with a message that says what to pass."""
    if not isinstance(query, str):
        raise EmptyQueryError(f"expected the query to be a string, got {type(query).__name__}")
    if not query.strip():
        raise EmptyQueryError("the query is empty: pass the question to answer, e.g. \"What's the weather in Paris?\"")
    try:
        query.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates: undecodable bytes from argv or a JSON escape
        raise QueryError(f"the query is not valid UTF-8 text (undecodable {query[exc.start:exc.end]!r} at "
                         f"character {exc.start}): pass it as UTF-8") from None
    return query


def prepare_messages(
    query: str,
    tools: Optional[list[Any]] = None,
    conversation_history: Optional[list[Message]] = None,
    tool_format: str = CARD,
) -> list[Message]:
    """Prepare the messages for a query, as the model card does (`tool_format` "card").

    A first query gets the system prompt and a user turn carrying the tools. A follow-up query
    (``conversation_history`` given, starting with that system prompt) is appended as a plain user
    turn: the tools stay in the first user turn, exactly as the model was trained.

    "native": the history (none of the card's text; a system message only if the caller gave one,
    else the template's default) and the query as a plain user turn; the tools go to the chat
    template itself (`template_tools`), which writes them where the model was trained to read them.
    """
    from . import get_format  # the formats build on this module's strings

    check_query(query)
    return get_format(tool_format).messages(query, tools, conversation_history)


def template_tools(tools: Optional[list[Any]], tool_format: str = CARD) -> Optional[list[dict[str, Any]]]:
    """The ``tools`` variable of the chat template: None for the card format (its tools are in the
    user turn) or when there are none; else the list in the OpenAI layout the templates expect
    (``{"type": "function", "function": {...}}``), each tool's own content as the caller passed it."""
    from . import get_format

    return get_format(tool_format).template_tools(tools)
