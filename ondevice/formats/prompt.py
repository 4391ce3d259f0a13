"""A request's messages in its tool format (`prepare_messages`), and the checks on the query.

The card's own strings (system prompt, user template) are in card.py.
"""

from __future__ import annotations

from typing import Any, Optional

from ..errors import EmptyQueryError, QueryError
from ..settings import CARD
from .base import Message
from .registry import get_format


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
    check_query(query)
    return get_format(tool_format).messages(query, tools, conversation_history)


def template_tools(tools: Optional[list[Any]], tool_format: str = CARD) -> Optional[list[dict[str, Any]]]:
    """The ``tools`` variable of the chat template: None for the card format (its tools are in the
    user turn) or when there are none; else the list in the OpenAI layout the templates expect
    (``{"type": "function", "function": {...}}``), each tool's own content as the caller passed it."""
    return get_format(tool_format).template_tools(tools)
