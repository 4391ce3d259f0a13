"""One answer being decoded in one sequence: the only decode loop in ondevice.

A `Session` holds one request's state (its sequence, matcher, sampler, first branch, drafter,
output and counters). The engine (engine.py) prefills its prompt, then alternates two calls:
`wants` says which tokens the session needs evaluated next (its last pick, the forced run after
it, a draft), and `accept` hands it the batch rows of their logits; the session then picks until it
needs another evaluation or is done. A single call is a batch of one.

At each step:
1. If the grammar allows exactly one continuation, llguidance returns its tokens (``compute_ff_tokens``,
   in the canonical tokenization, the last ones held back when a longer token could span the end of
   the forced text); they are appended without sampling, and evaluated in one batch together with
   the sampled token before them (one llama_decode per sampled token, not two).
2. Otherwise llguidance's mask of allowed tokens is computed (about 0.1 ms for a 128k vocabulary)
   and the token is picked within it.
3. With a drafter (speculate.py), tokens copied from the query are drafted at each pick and evaluated
   with the pending tokens; each pick is then made from its own row of logits, and the draft is kept
   while the picks equal it (the rest is removed from the sequence).
At a forced position llguidance's mask holds exactly the forced token, so greedy decoding with
fast-forward is token for token the step-by-step masked decoding (tested on random schemas).
When the budget runs out inside a call, the output is cut after the last complete call and the
structure is closed: the result is always valid (or, where the grammar admits a sentence instead,
the sentence so far), flagged ``truncated``.

The model decides (see `FirstBranch`): where the grammar admits a sentence as well as a call, the
first token's branch is the model's own unconstrained choice (or a threshold on the probability of
"no call"). At a call boundary, where the grammar allows another call or the end, a token the model
prefers outside the mask ends the list. A call identical to the one before it ends the list (it is
dropped; `max_identical`), and so does a call identical to one whose result the conversation already
holds (`answered`); when that refused call is the first and a sentence is allowed, the session
starts over under a grammar that admits only a sentence.

With `thinking` (a reasoning model), the answer opens with a thought decoded without the grammar
(no mask, no refusals): it ends where the model writes the block's end marker, or after the thought's
own budget, where the end marker is forced. The thought then belongs to the answer's context, as the
prompt does (`lead`), and the answer is decoded after it as above. The thought is never a call: it is
the generation's `reasoning`, streamed to `on_reasoning`.

Where a tool's schema has keywords the grammar does not enforce (relaxed, see schema/grammar_schema.py),
each complete call is checked against the full schema (`CallCheck`). A failing call is rolled back
(the output, the matcher and the sequence return to the end of the last accepted call) and drawn
again with a sampler of its own (temperature at least 1, a seed per try); after `tries` failures the
check's error is raised. A call that is returned has passed the check.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np
from llguidance import LLMatcher
from llguidance.numpy import allocate_token_bitmask, fill_next_token_bitmask

from ..errors import BudgetError, GrammarStateError, ToolChoiceError
from ..formats import get_format
from ..formats.reasoning import ThinkingBlock
from ..grammar.calls import Markers
from ..settings import CARD
from .llama import LlamaModel
from .sampling import Sampler, mask_to_bool
from .speculate import Drafter


@dataclass
class Generation:
    """What one decode produced."""

    tokens: list[int]
    text: str
    finish_reason: str  # "stop" (grammar complete), "eog" (end of turn), "budget" (max tokens or context), "repeat" (a repeated or answered call was dropped)
    truncated: bool  # the budget ran out and the structure was closed early
    sampled: int
    forced: int
    seconds: float
    steps: int = 0  # evaluations (llama_decode runs) this answer needed
    drafted: int = 0  # speculative tokens evaluated (see speculate.py)
    accepted: int = 0  # of which confirmed
    no_call_probability: Optional[float] = None  # at the first branch, when the grammar has one
    refused: int = 0  # calls refused as repeated or already answered
    resampled: int = 0  # calls drawn again after failing the check of a relaxed schema
    reasoning: Optional[str] = None  # the thought before the answer (a reasoning model)
    reasoning_tokens: int = 0  # the thought's tokens, markers included


@dataclass(frozen=True)
class Thinking:
    """The thought that opens an answer: decoded free, ended by the model's end marker or, after
    `budget` tokens, by the marker forced. `opened`: the prompt already opened it (its generation
    prompt ends with the opening marker), so the model writes only its text."""

    block: ThinkingBlock
    budget: int
    opened: bool = False


@dataclass(frozen=True)
class FirstBranch:
    """The tokens that start the tool-call block (a bool array over the vocabulary) at the first
    branch; with `threshold`, "no call" is taken when its probability is at least `threshold`.

    `intent`: the tokens with which the model starts a call in any spelling (a tag, ``{``, ``[``, a
    code fence; see grammar/calls.py's CALL_INTENT_STARTS). Then the branch is the model's own: its
    unconstrained first token (the sampler's pick without the mask) is a call or a sentence, and
    "no call" has the probability of all the other tokens (the whole distribution).
    """

    call_start: np.ndarray
    threshold: Optional[float] = None
    intent: Optional[np.ndarray] = None


@dataclass
class Refusals:
    """Which complete calls end the list: one already made `max_identical` times in this answer (0:
    no check), or one in `answered` (calls whose result the conversation holds). `start_over(refused)`
    is the grammar (Lark) to start the answer over with when its first call is refused, given the
    names of the tools refused so far: a sentence, the response format's JSON value, or (a call
    required) the calls of the other tools; None where nothing else may stand (the list then ends)."""

    max_identical: int = 0
    answered: tuple[Any, ...] = ()
    start_over: Optional[Callable[[frozenset[str]], Optional[str]]] = None
    # (call, the calls before it) -> False for a call nobody asked for (engine/grounding.py)
    grounded: Optional[Callable[[Any, Sequence[Any]], bool]] = None


@dataclass(frozen=True)
class CallCheck:
    """The check of each complete call where the grammar relaxed a keyword: `problem(call)` is the
    error to raise when the call (its ``{"name", "arguments"}`` value) fails its tool's full schema,
    None when it passes. A failing call is drawn again, `tries` draws in all."""

    problem: Callable[[Any], Optional[BaseException]]
    tries: int = 3


RESAMPLE_TEMPERATURE = 1.0  # the least temperature of a redrawn call: a greedy redraw would repeat it


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


class Session:
    """One request's decoding state in sequence `seq` of `model`, after its prompt was evaluated
    (the last prompt token's logits are row `first_row` of the last batch, or pending when None).

    Without a matcher (free generation) the answer also ends once `stop(text so far)` holds; it is
    asked after each token whose text holds a ``>``. `on_tokens` sees each run of tokens as it is
    appended; when the budget cuts a call, or a refused call is dropped, the final tokens differ from
    what it saw. `on_text` (for streaming) sees the answer's final text in order, piece by piece: a
    sentence as it grows, a tool-call answer one accepted call at a time (a call that will be refused
    or cut is never sent), and the closing at the end, so the pieces add up to the answer's text. An
    exception either raises ends the session and propagates (`on_text` is also asked, with "", at
    every step: a cancellation check).
    """

    def __init__(self, model: LlamaModel, seq: int, prompt: list[int], sampler: Sampler, budget: int,
                 matcher: Optional[LLMatcher] = None, fast_forward: bool = True,
                 stop: Optional[Callable[[str], bool]] = None, refusals: Optional[Refusals] = None,
                 drafter: Optional[Drafter] = None, on_tokens: Optional[Callable[[list[int]], None]] = None,
                 markers: Optional[Markers] = None, branch: Optional[FirstBranch] = None,
                 tool_format: str = CARD, first_row: Optional[int] = -1,
                 make_matcher: Optional[Callable[[str], LLMatcher]] = None, model_ends_list: bool = True,
                 on_text: Optional[Callable[[str], None]] = None, content: bool = False,
                 check: Optional[CallCheck] = None, thinking: Optional[Thinking] = None,
                 on_reasoning: Optional[Callable[[str], None]] = None):
        self.model, self.seq, self.prompt = model, seq, prompt
        self.sampler, self.matcher, self.fast_forward, self.stop = sampler, matcher, fast_forward, stop
        self.refusals, self.drafter, self.on_tokens = refusals or Refusals(), drafter, on_tokens
        self.branch, self.fmt = branch, get_format(tool_format)
        self.markers = markers or self.fmt.plain_markers()
        self.make_matcher, self.model_ends_list, self.on_text = make_matcher, model_ends_list, on_text
        self.content = content  # the grammar admits a JSON value instead of the calls (a response format)
        self._bytes = b""  # the output's text so far
        self.check, self._sampler = check, sampler  # the sampler to return to after a redrawn call
        self._tries = 0  # failed draws of the call being decoded (check)
        self._accepted_len = 0  # tokens in `out` when the last call was accepted: a failing call rolls back here
        self.resampled = 0  # calls drawn again after failing the check
        self._refused_tools: set[Optional[str]] = set()  # the tools whose first call was refused (start_over)
        self._sent = ""  # the text `on_text` has seen
        self._final_end = 0  # the end of the last accepted call: a tool-call answer is final up to there
        self.budget = max(0, min(budget, model.n_ctx - len(prompt)))
        self._answer_budget = budget
        self.lead = prompt  # what the answer follows: the prompt, then the thought
        self.thinking, self.on_reasoning = thinking, on_reasoning
        self.thought: list[int] = []
        self._thought_bytes = b""
        self._reasoning_sent = ""
        self.reasoning: Optional[str] = None
        self.start = time.perf_counter()
        self.out: list[int] = []
        self.pending: list[int] = [] if first_row is not None else [prompt[-1]]
        self.draft: list[int] = []  # drafted tokens asked for with `pending`
        self.left: list[int] = []  # drafted tokens evaluated in the sequence, not yet confirmed
        self.row = first_row if first_row is not None else 0  # the batch row after the last confirmed token
        self.at_pick = False  # set once an evaluation's logits are ready for a pick
        self.finish: Optional[str] = None
        self.sampled = self.forced = self.steps = self.drafted = self.accepted = self.refused = 0
        self.p_no_call: Optional[float] = None
        self._text = b""  # free generation's text so far, for `stop`
        self._calls_seen = 0
        self._at_boundary = False  # the output ends right after a complete call
        self._bitmask = allocate_token_bitmask(1, model.n_vocab) if matcher is not None else None
        if thinking is not None:
            self._thought_budget = max(0, min(thinking.budget, model.n_ctx - len(prompt) - 1))
            if not thinking.opened:
                self._add_thought(model.tokenize(thinking.block.open + thinking.block.inner, special=True))
        self._advance()

    # --- the engine's side --------------------------------------------------------------------------
    def wants(self) -> Optional[tuple[list[int], int]]:
        """The tokens to evaluate next in this sequence and how many logits rows (at the end) they
        need; None when the session is done."""
        if self.finish is not None:
            return None
        return self.pending + self.draft, len(self.draft) + 1

    def end(self) -> None:
        """End the answer where it stands, as a budget would (a server ends a sentence that holds one
        of the request's stop sequences: what follows would be cut anyway)."""
        if self.finish is None:
            self.finish = "budget"

    def accept(self, last_row: int) -> None:
        """The evaluation asked for by `wants` ran; `last_row` is the batch row of its last token.
        Picks until the next evaluation is needed or the answer is complete."""
        self.left, self.draft, self.pending = self.draft, [], []
        self.drafted += len(self.left)
        self.row = last_row - len(self.left)
        self.steps += 1
        self.at_pick = True
        self._advance()

    def generation(self) -> Generation:
        """The finished answer, closed validly when the budget cut it or a call was dropped."""
        self._discard()
        out, truncated, finish = self.out, False, self.finish or "budget"
        if self.matcher is not None and finish == "budget":
            out, truncated = self._close(out), True
        elif finish == "repeat":
            out = self._close(out, keep=-1)
        elif finish == "end":
            out, finish = self._close(out), "stop"
        text = self.model.detokenize(out).decode("utf-8", errors="replace")
        if self.on_text is not None and text.startswith(self._sent) and len(text) > len(self._sent):
            self.on_text(text[len(self._sent):])
            self._sent = text
        if self.thinking is not None and self.reasoning is None:  # ended inside the thought
            self.reasoning = self.thinking.block.visible(self._thought_text(), final=True)
            self._send_reasoning(self.reasoning)
        return Generation(out, text, finish, truncated, self.sampled, self.forced, time.perf_counter() - self.start,
                          self.steps, self.drafted, self.accepted, self.p_no_call, self.refused, self.resampled,
                          self.reasoning, len(self.thought))

    # --- the loop -------------------------------------------------------------------------------------
    def _advance(self) -> None:
        """Fast-forward and pick until an evaluation is needed or the answer is complete."""
        m = self.matcher
        while self.finish is None:
            if self.thinking is not None and self.reasoning is None:
                if not self._think():
                    return
                continue
            if not self.at_pick:
                if m is not None and self._forward():
                    continue
                if m is not None and m.is_stopped():
                    self.finish = "stop"
                elif len(self.out) >= self.budget:
                    self.finish = "budget"
                elif self.pending:
                    self.draft = (self.drafter.draft(self.out, m, self.budget - len(self.out))
                                  if self.drafter is not None and m is not None else [])
                    return
                else:
                    self.at_pick = True
                continue
            self.at_pick = False
            self._pick()

    def _forward(self) -> bool:
        """Append the tokens the grammar forces; True when some were appended."""
        m = self.matcher
        if m.is_error():
            raise GrammarStateError(f"the grammar engine failed after {self.model.detokenize(self.out)!r} (a bug: "
                                    "please report it with the tools)", details=m.get_error())
        if not self.fast_forward or m.is_stopped():
            return False
        ff = m.compute_ff_tokens()[: self.budget - len(self.out)]
        if not ff:
            return False
        if not m.consume_tokens(ff):
            raise GrammarStateError("the grammar engine refused its own forced tokens (a bug: please report it with "
                                    "the tools)", details=m.get_error())
        self._append(ff)
        self.forced += len(ff)
        return True

    # --- the thought ---------------------------------------------------------------------------------------
    def _think(self) -> bool:
        """One step of the thought; False when an evaluation is needed first."""
        block = self.thinking.block
        if len(self.thought) >= self._thought_budget:  # the budget: the end marker is forced
            self._end_thought(block.closing(self._thought_text()))
            return True
        if not self.at_pick:
            if self.pending:
                return False
            self.at_pick = True
            return True
        self.at_pick = False
        token = self.sampler.pick(self._logits(), generated=self.thought)
        if self.model.is_eog(token):  # the turn may not end inside the thought: close it, the answer follows
            self._end_thought(block.closing(self._thought_text()))
            return True
        self.sampled += 1
        self._add_thought([token])
        text = self._thought_text()
        end = block.ended(text)
        if end is not None:
            tail = text[end:]  # the layout after the marker, as far as the model wrote it
            self._end_thought(block.after[len(tail):] if block.after.startswith(tail) else "")
        return True

    def _add_thought(self, tokens: list[int]) -> None:
        self.thought.extend(tokens)
        self.pending.extend(tokens)
        self._thought_bytes += self.model.detokenize(tokens)
        self._send_reasoning(self.thinking.block.visible(self._thought_text()))

    def _thought_text(self) -> str:
        return _complete_utf8(self._thought_bytes).decode("utf-8", errors="replace")

    def _send_reasoning(self, visible: str) -> None:
        if self.on_reasoning is not None and visible.startswith(self._reasoning_sent):
            piece = visible[len(self._reasoning_sent):]
            self._reasoning_sent = visible
            if piece:
                self.on_reasoning(piece)

    def _end_thought(self, closing: str) -> None:
        """Force `closing` (the end marker and the layout after it, as far as the model did not write
        them) and start the answer after the thought."""
        if closing:
            tokens = self.model.tokenize(closing, special=True)
            self._add_thought(tokens)
            self.forced += len(tokens)
        self.reasoning = self.thinking.block.visible(self._thought_text(), final=True)
        self._send_reasoning(self.reasoning)
        self.lead = self.prompt + self.thought
        self.budget = max(0, min(self._answer_budget, self.model.n_ctx - len(self.lead)))
        self.at_pick = False

    def _logits(self) -> np.ndarray:
        return self.model.logits(self.row)

    def _pick(self) -> None:
        m, logits = self.matcher, self._logits()
        if m is None:
            token = self.sampler.pick(logits, generated=self.out)
        else:
            fill_next_token_bitmask(m, self._bitmask)
            allowed = mask_to_bool(self._bitmask[0], logits.shape[0])
            if self.branch is not None and not self.out:
                token = self._first_branch(logits, allowed)
            else:
                token = self._boundary(logits, allowed)
                if token is None:  # the model chose to stop calling
                    self.finish = "end"
                    return
        if self.model.is_eog(token):  # under a grammar: allowed only where the answer is complete
            self.finish = "eog" if m is None else "stop"
            return
        if m is not None and not m.consume_token(token):
            raise GrammarStateError(f"the grammar engine refused token {token} from its own mask after "
                                    f"{self.model.detokenize(self.out)!r} (a bug: please report it with the tools)",
                                    details=m.get_error())
        self.sampled += 1
        self._append([token])
        if self.finish is None and self.stop is not None and m is None:
            piece = self.model.detokenize([token])
            self._text += piece
            if b">" in piece and self.stop(self._text.decode("utf-8", errors="replace")):
                self.finish = "stop"

    def _first_branch(self, logits: np.ndarray, allowed: np.ndarray) -> int:
        """The first token where the grammar admits a sentence or a call, and the probability of "no
        call" (the share of the distribution, temperature 1, on tokens that start a sentence)."""
        branch = self.branch
        self.p_no_call = no_call_probability(logits, allowed, branch.call_start, branch.intent)
        call = allowed & branch.call_start[: logits.shape[0]]
        text = allowed & ~call
        if branch.threshold is not None and call.any() and text.any():
            allowed = text if self.p_no_call >= branch.threshold else call
        elif branch.intent is not None and call.any() and text.any():
            own = self.sampler.pick(logits, generated=[])  # the model's own first token, unconstrained
            allowed = call if branch.intent[own] else text
        return self.sampler.pick(logits, allowed, generated=[])

    def _boundary(self, logits: np.ndarray, allowed: np.ndarray) -> Optional[int]:
        """The pick within the mask; None where a complete call just ended, the model's own choice
        (the sampler's pick without the mask) lies outside the mask and the grammar lets the answer
        end there: then the list ends with the calls made. Inside the mask, the model's own choice
        is the pick (for a sampler with temperature, drawing from the whole distribution and ending
        when the draw is not allowed gives the end the probability the model gives it)."""
        if not (self.model_ends_list and self._at_boundary):
            return self.sampler.pick(logits, allowed, generated=self.out)
        own = self.sampler.pick(logits, generated=self.out)
        if allowed[own]:
            return own
        closed = self._closed_tokens(self.out)
        check = self.matcher.deep_copy()
        check.reset()
        if check.consume_tokens(closed) and check.is_accepting():
            return None
        return self.sampler.pick(logits, allowed, generated=self.out)

    # --- appending, and refusing repeated calls --------------------------------------------------------
    def _append(self, tokens: list[int]) -> None:
        self.out.extend(tokens)
        self.pending.extend(self._confirm(tokens))
        self._bytes += self.model.detokenize(tokens)
        if self.on_tokens is not None:
            self.on_tokens(tokens)
        self._at_boundary = False
        if self.matcher is not None and self.fmt.call_end in self.model.detokenize(tokens):
            self._after_call()
        if self.on_text is not None:
            self._stream()

    def _stream(self) -> None:
        """Send what of the output is final: free text and a sentence as they grow (a sentence never
        starts like the format's opening tag), a tool-call answer up to its last accepted call."""
        text = _complete_utf8(self._bytes).decode("utf-8", errors="replace")
        final = text if self.matcher is None or not self.fmt.may_start_calls(text) else text[:self._final_end]
        piece = final[len(self._sent):] if final.startswith(self._sent) else ""
        self._sent += piece
        self.on_text(piece)

    def _after_call(self) -> None:
        """Asked when new tokens may close a call (they hold the format's `call_end`): notes a
        call boundary, and refuses a repeated or answered call."""
        text = self._bytes.decode("utf-8", errors="replace")
        found = self.fmt.complete_calls(text)
        if len(found) <= self._calls_seen:
            return
        self._calls_seen = len(found)
        self._at_boundary = found[-1][1] == len(text)
        calls = [value for value, _ in found]
        r = self.refusals
        last = calls[-1]
        if self.check is not None and self._redrawn(last):
            return
        repeated = r.max_identical and sum(c == last for c in calls) > r.max_identical
        unasked = r.grounded is not None and not r.grounded(last, calls[:-1])
        if not (repeated or last in r.answered or unasked):
            self._final_end = found[-1][1]
            self._accepted_len, self._tries, self.sampler = len(self.out), 0, self._sampler
            return
        self.refused += 1
        if len(calls) == 1 and r.start_over is not None and self.make_matcher is not None:
            self._refused_tools.add(last.get("name") if isinstance(last, dict) else None)
            grammar = r.start_over(frozenset(self._refused_tools))
            if grammar is not None:
                self._restart(grammar)
                return
        self.finish = "repeat"

    def _redrawn(self, call: Any) -> bool:
        """Check a complete call; when it fails, roll it back and draw it again (True), or raise the
        check's error once `tries` draws failed."""
        error = self.check.problem(call)
        if error is None:
            return False
        self._tries += 1
        if self._tries >= self.check.tries:
            raise error
        self.resampled += 1
        base = self._sampler
        self.sampler = Sampler(max(base.temperature, RESAMPLE_TEMPERATURE), base.top_p, seed=7919 * self._tries)
        self._rollback(self._accepted_len)
        return True

    def _rollback(self, keep: int) -> None:
        """Return the output, the matcher and the sequence to the first `keep` tokens of the output."""
        self._discard()
        self.matcher.rollback(len(self.out) - keep)
        if self.matcher.is_error():
            raise GrammarStateError("the grammar engine could not roll back a call (a bug: please report it with "
                                    "the tools)", details=self.matcher.get_error())
        full = self.lead + self.out[:keep]
        evaluated = min(len(full) - 1, len(self.model.seq_tokens[self.seq]))  # the last one's logits are needed
        self.model.truncate(evaluated, self.seq)
        self.out, self.pending, self.draft, self.at_pick = self.out[:keep], full[evaluated:], [], False
        self._bytes = self.model.detokenize(self.out)
        self._calls_seen = len(self.fmt.complete_calls(self._bytes.decode("utf-8", errors="replace")))
        self._at_boundary = False

    def _restart(self, grammar: str) -> None:
        """Start the answer over under `grammar` (`start_over`'s): the output so far leaves the sequence."""
        self._discard()
        self.model.truncate(len(self.lead) - 1, self.seq)
        self.matcher = self.make_matcher(grammar)
        self.branch = None
        self.out, self.pending, self.draft, self.at_pick = [], [self.lead[-1]], [], False
        self._calls_seen, self._at_boundary, self._bytes, self._final_end = 0, False, b"", 0

    # --- speculation bookkeeping ------------------------------------------------------------------------
    def _confirm(self, tokens: list[int]) -> list[int]:
        """Record that `tokens` follow the output; returns those not already in the sequence (the
        drafted tokens equal to them are kept, from the first difference on the draft is removed)."""
        k = 0
        while k < len(tokens) and k < len(self.left) and tokens[k] == self.left[k]:
            k += 1
        self.accepted += k
        self.row += k
        rest = self.left[k:]
        self.left = [] if k < len(tokens) else rest
        if k < len(tokens) and rest:
            self._discard(rest)
        return tokens[k:]

    def _discard(self, rejected: Optional[list[int]] = None) -> None:
        """Remove unconfirmed drafted tokens from the sequence."""
        rejected = self.left if rejected is None else rejected
        if rejected:
            self.model.truncate(len(self.model.seq_tokens[self.seq]) - len(rejected), self.seq)
        self.left = []

    # --- closing a cut answer ----------------------------------------------------------------------------
    def _close(self, out: list[int], keep: Optional[int] = None) -> list[int]:
        """Close a truncated output validly (its complete calls, ``[:keep]``); the grammar re-checks it.

        A sentence (an output that does not start with the tag, where the grammar admits one) is
        complete as it stands; a tool-call block keeps its complete calls. The tags are encoded as the
        model emits them (`markers`), the rest as plain text.
        """
        matcher = self.matcher
        text = self.model.detokenize(out).decode("utf-8", errors="replace")
        if out and not self.fmt.starts_calls(text) and matcher.is_accepting():
            return out
        if self.content and out and not self.fmt.may_start_calls(text):  # a JSON value, not a call: no valid cut exists
            raise BudgetError(f"the budget of {len(out)} tokens ran out before the JSON answer was complete (it "
                              "cannot be closed validly): raise max_tokens")
        text = self.fmt.close_text(text, keep)
        tokens = self._closed_tokens(out, text)
        matcher.reset()
        if not (matcher.consume_tokens(tokens) and matcher.is_accepting()):
            empty = (self.fmt.empty_answer(), "")
            if text in empty and keep == -1:  # a call is required, and each one was refused
                tools = ", ".join(sorted(str(n) for n in self._refused_tools)) or "its first call"
                raise ToolChoiceError(
                    f"a call is required, and the model's only calls repeat ones whose results the conversation "
                    f"already holds ({tools}): allow an answer "
                    "without a call (tool_choice auto), or answered calls (setting refuse_answered_calls, "
                    "--allow-answered-calls)")
            if text in empty:  # a call is required (tool_choice "required") and none was complete
                raise BudgetError(f"the budget of {len(out)} tokens ran out before the first call was complete, and "
                                  "a call is required: raise max_tokens")
            if keep == -1:  # the refused call leaves fewer calls than the request requires (min_calls)
                raise ToolChoiceError(
                    f"more calls are required than the model made before it repeated one (a call identical to one "
                    f"before it, or to one the conversation already answered, ends the list): {text!r}; require fewer "
                    "calls (min_calls), or allow repeats (setting max_identical_calls 0, refuse_answered_calls off)")
            raise GrammarStateError(f"could not close the truncated output validly: {text!r}")
        return tokens

    def _closed_tokens(self, out: list[int], text: Optional[str] = None) -> list[int]:
        """The tokens of `text` (default: `out` closed after its complete calls), the tags encoded as
        the model emits them (`markers`), the rest as plain text."""
        if text is None:
            text = self.fmt.close_text(self.model.detokenize(out).decode("utf-8", errors="replace"))
        return self.fmt.closed_tokens(self.model, out, text, self.markers)


def _complete_utf8(data: bytes) -> bytes:
    """`data` less a UTF-8 sequence cut at its end (its bytes come with the next token)."""
    for k in range(1, min(4, len(data)) + 1):
        byte = data[-k]
        if byte & 0xC0 == 0x80:  # a continuation byte: look further back for the lead
            continue
        if byte >= 0xC0 and k < (2 if byte < 0xE0 else 3 if byte < 0xF0 else 4):
            return data[:-k]
        break
    return data


def lcp(a: list[int], b: list[int]) -> int:
    """Length of the longest common prefix of two token lists."""
    n = min(len(a), len(b))
    if n == 0:
        return 0
    x = np.asarray(a[:n])
    y = np.asarray(b[:n])
    diff = np.flatnonzero(x != y)
    return int(diff[0]) if diff.size else n
