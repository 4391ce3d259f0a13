"""The decode loop: constrained by the tool-call grammar, with forced tokens appended in one batch.

At each step:
1. If the grammar allows exactly one continuation, llguidance returns its tokens (``compute_ff_tokens``,
   in the canonical tokenization, the last ones held back when a longer token could span the end of
   the forced text); they are appended without sampling, and evaluated in one batch together with
   the sampled token before them (one llama_decode per sampled token, not two).
2. Otherwise llguidance's mask of allowed tokens is computed (about 0.1 ms for a 128k vocabulary,
   against tens of ms for the llama_decode it follows) and the token is picked within it.
3. With a drafter (speculate.py), tokens copied from the query are drafted at each pick and evaluated
   in the same llama_decode as the pending tokens; each pick is then made from its own row of logits,
   and the draft is kept while the picks equal it.
At a forced position llguidance's mask holds exactly the forced token, so greedy decoding with
fast-forward is token for token the step-by-step masked decoding (tested on random schemas).
Checking only the picked token (``validate_tokens``) would be cheaper still, but it accepts
non-canonical splits of forced text that the mask refuses, so the two paths would drift apart.
When the budget runs out inside a call, the output is cut after the last complete call and the
structure is closed: the result is always a valid ``<tool_call>[...]</tool_call>`` (or, where the
grammar admits a sentence instead, the sentence so far), flagged ``truncated``.

The first branch (``FirstBranch``): where the grammar admits a sentence as well as the tool-call
block, the first token decides between them. Its masked distribution gives the probability of "no
call" (the mass on tokens that start a sentence); it is reported, and with a threshold it decides
the branch instead of the sampler.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np
from llguidance import LLMatcher
from llguidance.numpy import allocate_token_bitmask, fill_next_token_bitmask

from .errors import BudgetError, GrammarStateError
from .grammar import Markers
from .llama import LlamaModel
from .parse import CARD, CLOSE, NATIVE, OPEN, TOOL_CALL_CLOSE, TOOL_CALL_OPEN, close_text, complete_calls
from .sampling import Sampler, mask_to_bool
from .speculate import Drafter, Speculation


@dataclass
class Generation:
    """What one decode produced."""

    tokens: list[int]
    text: str
    finish_reason: str  # "stop" (grammar complete, or free text closed its list), "eog" (end of turn), "budget" (max tokens or context), "repeat" (a call repeated, see max_identical)
    truncated: bool  # the budget ran out and the structure was closed early
    sampled: int
    forced: int
    seconds: float
    steps: int = 0  # llama_decode calls
    drafted: int = 0  # speculative tokens evaluated (see speculate.py)
    accepted: int = 0  # of which confirmed
    no_call_probability: Optional[float] = None  # at the first branch, when the grammar has one


@dataclass(frozen=True)
class FirstBranch:
    """The tokens that start the tool-call block (a bool array over the vocabulary) at the first
    branch; with `threshold`, "no call" is taken when its probability is at least `threshold`.

    `intent`: the tokens with which the model starts a call in any spelling (a
    tag, ``{``, ``[``, a code fence; see grammar.CALL_INTENT_STARTS). Then the branch is the model's
    own: its unconstrained first token (the sampler's pick without the mask) is a call or a
    sentence, and "no call" has the probability of all the other tokens (the whole distribution):
    a model that writes its calls as a JSON code block rather than in its trained tags still
    decides by its own first token, and the grammar then writes the call in the tags.
    """

    call_start: np.ndarray
    threshold: Optional[float] = None
    intent: Optional[np.ndarray] = None


def decode(
    model: LlamaModel,
    sampler: Sampler,
    budget: int,
    matcher: Optional[LLMatcher] = None,
    fast_forward: bool = True,
    stop: Optional[Callable[[str], bool]] = None,
    max_identical: int = 0,
    drafter: Optional[Drafter] = None,
    on_tokens: Optional[Callable[[list[int]], None]] = None,
    markers: Optional[Markers] = None,
    branch: Optional[FirstBranch] = None,
    tool_format: str = CARD,
    content: bool = False,
) -> Generation:
    """Generate after the prompt already evaluated in `model`, under `matcher` when given.

    Without a matcher, generation also ends (finish "stop") once `stop(text so far)` holds; it is
    asked after each token whose text holds a ``>``. Under a matcher, `max_identical` > 0 ends the
    list (finish "repeat") when a call completes that is the same as the `max_identical` before it:
    the extra call is dropped and the list closed. With a `drafter` (and a matcher), drafted
    continuations are verified in the same batches (speculate.py); the output is the same.
    `on_tokens` sees each run of tokens as it is appended (for streaming); an exception it raises
    stops the generation and propagates. When the budget cuts a call, or a repeated call is dropped,
    the returned tokens differ from what it saw (the structure is closed after the last kept call).
    `markers` says how the tags are tokenized (for closing a truncated output); `branch` marks the
    first token as the choice between a call and a sentence (see FirstBranch); `tool_format` is
    the layout of the calls (parse.py), for finding complete calls. `content`: the grammar admits a
    JSON value instead of the calls (a response format); one the budget cuts raises BudgetError.
    """
    start = time.perf_counter()
    calls_before = model.decode_calls
    spec = Speculation(model)
    budget = max(0, min(budget, model.n_ctx - len(model.tokens)))
    out: list[int] = []
    pending: list[int] = []  # appended to `out` but not yet evaluated: evaluated together, in one batch
    sampled = forced = 0
    bitmask = allocate_token_bitmask(1, model.n_vocab) if matcher is not None else None
    finish = "budget"
    text = b""  # the output so far, for `stop`
    p_no_call: Optional[float] = None

    while True:
        if matcher is not None:
            if matcher.is_error():
                raise GrammarStateError(f"the grammar engine failed after {model.detokenize(out)!r} (a bug: please "
                                        "report it with the tools)", details=matcher.get_error())
            if fast_forward and not matcher.is_stopped():
                ff = matcher.compute_ff_tokens()[: budget - len(out)]
                if ff:
                    if not matcher.consume_tokens(ff):
                        raise GrammarStateError("the grammar engine refused its own forced tokens (a bug: please report "
                                                "it with the tools)", details=matcher.get_error())
                    out.extend(ff)
                    pending.extend(spec.confirm(ff))
                    forced += len(ff)
                    if on_tokens is not None:
                        on_tokens(ff)
                    if max_identical and _repeats(model, out, ff, max_identical, tool_format):
                        finish = "repeat"
                        break
                    continue
        if matcher is not None and matcher.is_stopped():
            finish = "stop"
            break
        if len(out) >= budget:
            break
        if pending:  # the last picked token, the forced run after it and a draft: one llama_decode
            draft = drafter.draft(out, matcher, budget - len(out)) if drafter and matcher else []
            spec.evaluate(pending, draft)
            pending = []
        if branch is not None and not out and matcher is not None:
            token, p_no_call = _pick_first_branch(sampler, spec.logits(), matcher, bitmask, branch)
        else:
            token = _pick(sampler, spec.logits(), matcher, bitmask, out)
        if model.is_eog(token):  # under a grammar: allowed only where the answer is complete
            finish = "eog" if matcher is None else "stop"
            break
        if matcher is not None and not matcher.consume_token(token):
            raise GrammarStateError(f"the grammar engine refused token {token} from its own mask after "
                                    f"{model.detokenize(out)!r} (a bug: please report it with the tools)",
                                    details=matcher.get_error())
        out.append(token)
        pending.extend(spec.confirm([token]))
        sampled += 1
        if on_tokens is not None:
            on_tokens([token])
        if matcher is not None and max_identical and _repeats(model, out, [token], max_identical, tool_format):
            finish = "repeat"
            break
        if stop is not None and matcher is None:
            piece = model.detokenize([token])
            text += piece
            if b">" in piece and stop(text.decode("utf-8", errors="replace")):
                finish = "stop"
                break

    spec.discard()
    truncated = False
    if matcher is not None and finish == "budget":
        out = _close(model, matcher, out, markers or Markers(), tool_format=tool_format, content=content)
        truncated = True
    elif finish == "repeat":
        out = _close(model, matcher, out, markers or Markers(), keep=-1, tool_format=tool_format)
    text = model.detokenize(out).decode("utf-8", errors="replace")
    return Generation(out, text, finish, truncated, sampled, forced, time.perf_counter() - start,
                      model.decode_calls - calls_before, spec.drafted, spec.accepted, p_no_call)


def _pick(sampler: Sampler, logits: np.ndarray, matcher: Optional[LLMatcher], bitmask: Any,
          generated: list[int]) -> int:
    """The sampler's token; under a grammar, chosen within llguidance's mask of allowed tokens."""
    if matcher is None:
        return sampler.pick(logits, generated=generated)
    fill_next_token_bitmask(matcher, bitmask)
    return sampler.pick(logits, mask_to_bool(bitmask[0], logits.shape[0]), generated=generated)


def _repeats(model: LlamaModel, out: list[int], new: list[int], max_identical: int, tool_format: str = CARD) -> bool:
    """Whether the output's last `max_identical` + 1 complete calls are identical (asked when `new`
    tokens hold a ``}``: a call ends only with one; native: a block ends with its closing tag)."""
    if (b">" if tool_format == NATIVE else b"}") not in model.detokenize(new):
        return False
    calls = complete_calls(model.detokenize(out).decode("utf-8", errors="replace"), tool_format)
    if len(calls) <= max_identical:
        return False
    last = [value for value, _ in calls[-(max_identical + 1):]]
    return all(value == last[0] for value in last)


def no_call_probability(logits: np.ndarray, allowed: np.ndarray, call_start: np.ndarray,
                        intent: Optional[np.ndarray] = None) -> float:
    """The share of the masked next-token distribution (softmax of the raw logits) on allowed
    tokens that do not start the tool-call block; with `intent`, the share of the whole
    distribution on tokens that do not start a call in any spelling (see FirstBranch)."""
    if intent is not None:
        weights = np.exp(logits.astype(np.float64) - float(np.max(logits)))
        return float(weights[~intent[: logits.shape[0]]].sum() / weights.sum())
    call = call_start[: logits.shape[0]]
    weights = np.exp(logits[allowed].astype(np.float64) - float(np.max(logits[allowed])))
    return float(weights[~call[allowed]].sum() / weights.sum())


def _pick_first_branch(sampler: Sampler, logits: np.ndarray, matcher: LLMatcher, bitmask: Any,
                       branch: FirstBranch) -> tuple[int, float]:
    """The first token, and the probability of "no call": the share of the masked distribution
    (softmax of the raw logits, temperature 1) on tokens that start a sentence rather than a call."""
    fill_next_token_bitmask(matcher, bitmask)
    allowed = mask_to_bool(bitmask[0], logits.shape[0])
    p_text = no_call_probability(logits, allowed, branch.call_start, branch.intent)
    call = allowed & branch.call_start[: logits.shape[0]]
    text = allowed & ~call
    if branch.threshold is not None and call.any() and text.any():
        allowed = text if p_text >= branch.threshold else call
    elif branch.intent is not None and call.any() and text.any():
        own = sampler.pick(logits, generated=[])  # the model's own first token, unconstrained
        allowed = call if branch.intent[own] else text
    return sampler.pick(logits, allowed, generated=[]), p_text


def _close(model: LlamaModel, matcher: LLMatcher, out: list[int], markers: Markers,
           keep: Optional[int] = None, tool_format: str = CARD, content: bool = False) -> list[int]:
    """Close a truncated output validly (its complete calls, ``[:keep]``); the grammar re-checks it.

    A sentence (an output that does not start with the tag, where the grammar admits one) is
    complete as it stands; a tool-call block keeps its complete calls. The tags are encoded as the
    model emits them (`markers`), the rest as plain text.
    """
    text = model.detokenize(out).decode("utf-8", errors="replace")
    if out and not text.startswith(TOOL_CALL_OPEN) and matcher.is_accepting():
        return out
    if content and out and not text.startswith("<"):  # a JSON value, not a call: no valid cut exists
        raise BudgetError(f"the budget of {len(out)} tokens ran out before the JSON answer was complete (it "
                          "cannot be closed validly): raise max_tokens")
    text = close_text(text, keep, tool_format)
    if tool_format == NATIVE:
        tokens = _native_tokens(model, out, text, markers)
    elif markers.special:
        tokens = list(markers.open_ids) + model.tokenize(text[len(TOOL_CALL_OPEN):-len(TOOL_CALL_CLOSE)], special=False) \
            + list(markers.close_ids)
    else:
        tokens = model.tokenize(text, special=False)
    matcher.reset()
    if not (matcher.consume_tokens(tokens) and matcher.is_accepting()):
        if text in (OPEN + CLOSE, ""):  # the grammar asks for a call (tool_choice "required") and none was complete
            raise BudgetError(f"the budget of {len(out)} tokens ran out before the first call was complete, and a "
                              "call is required: raise max_tokens")
        raise GrammarStateError(f"could not close the truncated output validly: {text!r}")
    return tokens


def _native_tokens(model: LlamaModel, out: list[int], text: str, markers: Markers) -> list[int]:
    """The tokens of `text`, a prefix of the output's text (its complete blocks): the output's own
    tokens as far as they lie within it (a tag may be a special token or text), the rest (a token
    straddling the cut) re-tokenized as plain text."""
    target = len(text.encode("utf-8"))
    kept: list[int] = []
    size = 0
    for token in out:
        piece = len(model.detokenize([token]))
        if size + piece > target:
            break
        kept.append(token)
        size += piece
    rest = text.encode("utf-8")[size:].decode("utf-8", errors="replace")
    return kept + (model.tokenize(rest, special=False) if rest else [])


def lcp(a: list[int], b: list[int]) -> int:
    """Length of the longest common prefix of two token lists."""
    n = min(len(a), len(b))
    if n == 0:
        return 0
    x = np.asarray(a[:n])
    y = np.asarray(b[:n])
    diff = np.flatnonzero(x != y)
    return int(diff[0]) if diff.size else n
