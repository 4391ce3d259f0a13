"""Prompt-lookup speculation: draft the answer's next tokens from the query, verify them in one batch.

Tool-call arguments are mostly copied from the query or the conversation ("New York", file paths,
names, quoted messages). At a position where the model must choose, the drafter takes the bytes the
grammar forces but has not yet turned into tokens, finds the longest end of the text so far (at least
`min_match` bytes) that occurs in the query or history, and proposes the tokens of those forced bytes
and of what follows that end there, cut to the prefix the grammar accepts
(``LLMatcher.validate_tokens``, which does not move the matcher). The decode loop evaluates the
draft in the same llama_decode as the tokens pending before it, with logits for every row, then
picks each next token as usual (same sampler, same mask, same RNG draws) from the row before it:
while the pick equals the drafted token, the drafted token is already in the KV cache; at the first
difference the rest of the draft is removed from the cache (`LlamaModel.truncate`).

The tokens chosen are therefore the ones decoding without a draft would choose, given the same
logits; only the number of llama_decode calls changes (session.py keeps the draft's rows; llama.cpp
may round a row differently with the number of rows evaluated, as with fast-forward: see
tests/engine/test_decode.py).
"""

from __future__ import annotations

from typing import Optional, Sequence

from llguidance import LLMatcher

from .llama import LlamaModel

# Measured by counting (bench/speed.py's replayed answers, Llama 3 tokenizer, the card's examples and 20
# BFCL live_simple cases): about half the drafted tokens are accepted; 4 to 16 tokens and 1 to 4 bytes
# all cut decode steps per call from 14.6 to 7.3-7.9; 6 and 2 keep the fewest wasted rows for that.
# (A drafted row costs about a tenth of a decode step on the 1B shape: batched, plus its logits row.)
MAX_DRAFT_TOKENS = 6
MIN_MATCH_BYTES = 2
MAX_MATCH_BYTES = 48


def draft_source(query: str, history: Optional[Sequence[dict[str, str]]] = None) -> str:
    """The text drafts are copied from: the conversation's turns (not the system prompt), the query last.

    (Tool names and schemas are left out: measured on the card's examples, drafts copied from them
    were mostly wrong guesses among several tools, and cost more llama_decode calls than they saved.)
    """
    turns = [m.get("content") or "" for m in history or () if m.get("role") != "system"]
    return "\n".join(turns + [query])


class Drafter:
    """Drafts from `source` (the query and conversation text) for one decode."""

    def __init__(self, model: LlamaModel, source: str, max_tokens: int = MAX_DRAFT_TOKENS,
                 min_match: int = MIN_MATCH_BYTES):
        self.model = model
        self.source = source.encode("utf-8")
        self.max_tokens = max_tokens
        self.min_match = min_match
        self._text = bytearray()  # the generated text so far, as bytes
        self._n_decoded = 0

    def draft(self, generated: Sequence[int], matcher: LLMatcher, limit: int) -> list[int]:
        """Up to `limit` tokens likely to follow `generated`, all allowed by `matcher` (not moved).

        The draft starts with the bytes the grammar forces but whose tokens it held back (a longer
        token could span their end, e.g. the `` "`` opening a string value), then continues with what
        follows the longest end of that text in the source.
        """
        limit = min(limit, self.max_tokens)
        if limit <= 0:
            return []
        if len(generated) < self._n_decoded:  # a new output: start over
            self._text, self._n_decoded = bytearray(), 0
        self._text += self.model.detokenize(generated[self._n_decoded:])
        self._n_decoded = len(generated)
        forced = bytes(matcher.compute_ff_bytes())
        start = self._continuation_start((bytes(self._text[-MAX_MATCH_BYTES:]) + forced)[-MAX_MATCH_BYTES:])
        copied = b"" if start is None else self.source[start:start + 8 * limit]
        if not (forced or copied):
            return []
        tokens = self.model.tokenize((forced + copied).decode("utf-8", errors="ignore"), special=False)
        if copied and start + len(copied) < len(self.source):
            tokens = tokens[:-1]  # the byte limit may have cut the last token
        tokens = tokens[:limit]
        return tokens[:matcher.validate_tokens(tokens)] if tokens else []

    def _continuation_start(self, tail: bytes) -> Optional[int]:
        """Where the source continues after its last occurrence of the longest end of `tail`."""
        found = None
        if not self.source:
            return None
        for n in range(self.min_match, len(tail) + 1):
            at = self.source.rfind(tail[-n:])
            if at < 0:
                break
            found = at + n
        if found is None or found >= len(self.source):
            return None
        return found
