"""Token choice: greedy, temperature and top-p draw from the right (masked) distributions."""

from __future__ import annotations

import numpy as np

from ondevice.engine.sampling import Sampler, mask_to_bool
import pytest

pytestmark = pytest.mark.nomodel

LOGITS = np.log(np.array([0.5, 0.3, 0.15, 0.05], dtype=np.float32))


def frequencies(sampler, allowed=None, n=20000):
    return np.bincount([sampler.pick(LOGITS, allowed) for _ in range(n)], minlength=4) / n


def test_greedy_respects_the_mask():
    assert Sampler().pick(LOGITS) == 0
    assert Sampler().pick(LOGITS, np.array([False, False, True, True])) == 2


def test_temperature_sampling_follows_the_masked_distribution():
    allowed = np.array([True, False, True, True])
    expected = np.array([0.5, 0, 0.15, 0.05]) / 0.7
    assert np.abs(frequencies(Sampler(1.0, 1.0, seed=1), allowed) - expected).max() < 0.015


def test_top_p_keeps_the_smallest_nucleus():
    got = frequencies(Sampler(1.0, 0.7, seed=2))
    assert got[2] == got[3] == 0
    assert abs(got[0] - 0.625) < 0.015


def test_bitmask_unpacking_is_little_endian_per_word():
    mask = np.zeros(2, dtype=np.int32)
    mask[0] = 1 << 3
    mask[1] = 1 << 0
    allowed = mask_to_bool(mask, 40)
    assert list(np.flatnonzero(allowed)) == [3, 32]
