"""One answer as the API returns it: what a call returns, and what a format writes back into the conversation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from ..schema.grammar_schema import Relaxation
from .blocks import ToolCall


@dataclass
class CallResult:
    """One answer: the calls (None only for unconstrained text that did not parse) and the raw text.

    message: the sentence the model answered with instead of a call (``no_call`` "text" or
    "threshold"; ``calls`` is then []). no_call_probability: in those modes, the probability the
    model gave a sentence rather than the tool-call block at the first token. value: with a
    response format (structured outputs), the answer's JSON value, validated against its schema
    (``message`` is then its JSON text and ``calls`` []). relaxed: the keywords of the request's tools
    that the grammar did not enforce (each call was checked against them after decoding instead).
    reasoning: a reasoning model's thought before the answer (None: the model wrote none); never a call.
    """

    calls: Optional[list[ToolCall]]
    text: str
    finish_reason: str
    truncated: bool = False
    timings: dict[str, float] = field(default_factory=dict)
    message: Optional[str] = None
    no_call_probability: Optional[float] = None
    value: Any = None
    relaxed: list[Relaxation] = field(default_factory=list)
    reasoning: Optional[str] = None

    def calls_as_dicts(self) -> Optional[list[dict[str, Any]]]:
        return None if self.calls is None else [c.to_dict() for c in self.calls]

    def to_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls_as_dicts(),
            "text": self.text,
            "finish_reason": self.finish_reason,
            "truncated": self.truncated,
            "message": self.message,
            "no_call_probability": self.no_call_probability,
            "value": self.value,
            "relaxed": [r.to_dict() for r in self.relaxed],
            "reasoning": self.reasoning,
            "timings": self.timings,
        }

