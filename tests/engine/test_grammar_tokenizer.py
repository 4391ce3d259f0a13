"""The grammar tokenizer's on-disk token bytes: same tokenizer as llguidance's own builder, rebuilt when damaged."""

from __future__ import annotations

import warnings

from llguidance.llamacpp import lltokenizer_from_vocab

from ondevice.engine.grammar_tokenizer import build_lltokenizer, cache_file, cached_token_pieces, token_pieces


def test_cached_pieces_give_llguidances_own_tokenizer(caller):
    model = caller.model
    cache_file(model).unlink(missing_ok=True)
    first = cached_token_pieces(model)
    assert cache_file(model).is_file()
    assert cached_token_pieces(model) == first == token_pieces(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        reference = lltokenizer_from_vocab(model.vocab)
    ours = build_lltokenizer(model, first)
    assert ours.vocab_size == reference.vocab_size and ours.eos_token == reference.eos_token
    assert all(ours.decode_bytes([t]) == reference.decode_bytes([t]) for t in range(model.n_vocab))
    assert all(ours.is_special_token(t) == reference.is_special_token(t) for t in range(model.n_vocab))
    text = '<tool_call>[{"name": "get_weather", "arguments": {"location": "New York"}}]</tool_call><|im_end|>'
    assert ours.tokenize_str(text) == reference.tokenize_str(text)


def test_a_damaged_or_foreign_cache_file_is_rebuilt(caller):
    model = caller.model
    good = cached_token_pieces(model)
    path = cache_file(model)
    for damage in (path.read_bytes()[:-7], b"not a pieces file", path.read_bytes()[:8] + (5).to_bytes(8, "little")):
        path.write_bytes(damage)
        assert cached_token_pieces(model) == good
        assert path.read_bytes() != damage  # rewritten whole
