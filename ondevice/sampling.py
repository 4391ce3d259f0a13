"""Choosing the next token from logits: greedy (the default) or temperature + top-p with a seeded RNG."""

from __future__ import annotations

from typing import Optional

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

    def pick(self, logits: np.ndarray, allowed: Optional[np.ndarray] = None) -> int:
        if allowed is not None:
            logits = np.where(allowed, logits, -np.inf)
        if self.greedy:
            return int(np.argmax(logits))
        scaled = logits.astype(np.float64) / self.temperature
        scaled -= scaled.max()
        probs = np.exp(scaled)
        if self.top_p < 1.0:
            order = np.argsort(-probs)
            cumulative = np.cumsum(probs[order]) / probs.sum()
            keep = order[: int(np.searchsorted(cumulative, self.top_p)) + 1]
            trimmed = np.zeros_like(probs)
            trimmed[keep] = probs[keep]
            probs = trimmed
        probs /= probs.sum()
        return int(self.rng.choice(probs.shape[0], p=probs))
