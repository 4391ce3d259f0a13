"""Choosing the next token from logits: greedy (the default) or temperature + top-p with a seeded RNG."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np


def mask_to_bool(bitmask: np.ndarray, n_vocab: int) -> np.ndarray:
    """llguidance's packed int32 bitmask (bit i = token i allowed) as a bool array of n_vocab."""
    return np.unpackbits(bitmask.view(np.uint8), bitorder="little")[:n_vocab].astype(bool)


class Sampler:
    """Picks tokens; `allowed` restricts the choice (tokens outside it are never returned)."""

    def __init__(self, temperature: float = 0.0, top_p: float = 1.0, seed: int = 0):
        self.temperature = temperature
        self.top_p = top_p
        self.rng = np.random.default_rng(seed)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    def pick(self, logits: np.ndarray, allowed: Optional[np.ndarray] = None, generated: Sequence[int] = ()) -> int:
        """A token from `logits`, within `allowed` when given. `generated` is the answer's tokens so
        far, for choosers that depend on them (this one does not)."""
        if allowed is not None:
            logits = np.where(allowed, logits, -np.inf)
        if self.greedy:
            return int(np.argmax(logits))
        probs = np.exp((logits - np.max(logits)) / self.temperature, dtype=np.float64)
        if self.top_p < 1.0:
            candidates = _nucleus(probs, self.top_p)
            return int(candidates[_draw(probs[candidates], self.rng)])
        return _draw(probs, self.rng)


def _draw(weights: np.ndarray, rng: np.random.Generator) -> int:
    """Index drawn with probability proportional to `weights` (inverse CDF; zero weights never drawn)."""
    cumulative = np.cumsum(weights)
    index = int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))
    return min(index, weights.shape[0] - 1)


def _nucleus(probs: np.ndarray, top_p: float) -> np.ndarray:
    """The smallest set of most likely tokens whose mass reaches top_p, most likely first.

    Exact without sorting the whole vocabulary: the top k are partitioned out, k growing until their
    mass reaches top_p (the nucleus is then inside them).
    """
    n = probs.shape[0]
    target = top_p * probs.sum()
    k = 64
    while True:
        top = np.argpartition(-probs, k - 1)[:k] if k < n else np.arange(n)
        if k >= n or probs[top].sum() >= target:
            break
        k *= 4
    order = top[np.argsort(-probs[top], kind="stable")]
    cut = int(np.searchsorted(np.cumsum(probs[order]), target)) + 1
    return order[:cut]
