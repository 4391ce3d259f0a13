"""What the engine reads from a model's tokenizer once and keeps: each token's bytes, the grammar
tokenizer, how the tags are written, the end-of-generation tokens, and the tokens that start a call."""

from __future__ import annotations

from typing import Optional

import numpy as np
from llguidance import LLMatcher, LLTokenizer
from llguidance.numpy import allocate_token_bitmask, fill_next_token_bitmask

from ..grammar.calls import CALL_INTENT_STARTS, Markers, message_lark
from .grammar_tokenizer import build_lltokenizer, cached_token_pieces, is_special_token
from .llama import LlamaModel
from .sampling import mask_to_bool

CALL_INTENT_BYTES = {bytes([c]) for c in CALL_INTENT_STARTS.encode()}


class Vocabulary:
    """The token tables of one loaded model, each built on first use."""

    def __init__(self, model: LlamaModel):
        self.model = model
        self._pieces: Optional[list[bytes]] = None
        self._max_token_bytes = 1
        self._lltokenizer: Optional[LLTokenizer] = None
        self._markers: dict[tuple[str, str], Markers] = {}
        self._eog: Optional[list[int]] = None
        self._call_start: Optional[np.ndarray] = None
        self._intent: dict[tuple[str, str], np.ndarray] = {}

    def pieces(self) -> list[bytes]:
        """Each token's bytes as llguidance sees them (special tokens marked), read once (from the
        cache file: ~25 ms for 128k tokens)."""
        if self._pieces is None:
            self._pieces = cached_token_pieces(self.model)
            self._max_token_bytes = max(map(len, self._pieces), default=1)
        return self._pieces

    @property
    def max_token_bytes(self) -> int:
        """An upper bound on the bytes of text one token covers (the longest token's bytes)."""
        self.pieces()
        return self._max_token_bytes

    def lltokenizer(self) -> LLTokenizer:
        if self._lltokenizer is None:  # built once per process, on first use (see grammar_tokenizer.py)
            self._lltokenizer = build_lltokenizer(self.model, self.pieces())
        return self._lltokenizer

    def markers(self, tags: tuple[str, str]) -> Markers:
        """How this model's tokenizer writes a format's tags (text pieces, or one special token each)."""
        if tags not in self._markers:
            self._markers[tags] = Markers.for_tokenizer(tags, self.model.tokenize,
                                                        lambda t: is_special_token(self.model, t))
        return self._markers[tags]

    def eog_ids(self) -> list[int]:
        """The end-of-generation tokens (special tokens asked one by one, not the whole vocabulary)."""
        if self._eog is None:
            self._eog = [t for t, p in enumerate(self.pieces()) if p[:1] == b"\xff" and self.model.is_eog(t)]
        return self._eog

    def call_start(self, message_max_chars: int) -> np.ndarray:
        """The tokens a sentence cannot start with (one mask, computed once; the same in every
        format), ending at once excluded: the tokens that start the tool-call block at the first branch."""
        if self._call_start is None:
            grammar = LLMatcher.grammar_from_lark(message_lark(message_max_chars))
            matcher = LLMatcher(self.lltokenizer(), grammar, log_level=0)
            bitmask = allocate_token_bitmask(1, self.model.n_vocab)
            fill_next_token_bitmask(matcher, bitmask)
            call_start = ~mask_to_bool(bitmask[0], self.model.n_vocab)
            call_start[self.eog_ids()] = False  # ending at once: no call
            self._call_start = call_start
        return self._call_start

    def call_intent(self, tags: tuple[str, str]) -> np.ndarray:
        """The tokens that start a call in any spelling (their text, less leading blanks, starts with
        one of grammar/calls.py's CALL_INTENT_STARTS; the opening tag's own token; never an end-of-turn or
        other control token), as a bool array over the vocabulary; computed once per format's tags."""
        if tags not in self._intent:
            pieces = self.pieces()  # a special token's bytes are marked (0xff first), so it is never intent
            intent = np.fromiter((p.lstrip()[:1] in CALL_INTENT_BYTES for p in pieces), dtype=bool, count=len(pieces))
            markers = self.markers(tags)
            intent[[t for t in markers.open_ids if markers.special]] = True
            intent[self.eog_ids()] = False
            self._intent[tags] = intent
        return self._intent[tags]
