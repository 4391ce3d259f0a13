"""Check a converted GGUF against its source: tokenization (oracle: the `tokenizers` library) and
logits (oracle: transformers' LlamaForCausalLM in float32 on CPU), both through real llama.cpp.

torch/transformers/tokenizers are imported lazily: they are only needed when verifying.
"""

from __future__ import annotations

from ondevice import wait_policy  # noqa: F401  (before llama.cpp loads: see ondevice/wait_policy.py)

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

# A fixed text set: English, code, JSON, emoji, CJK, digits/whitespace edge cases.
VERIFY_TEXTS: list[str] = [
    "Hello world! What's the weather like in New York in fahrenheit?",
    "I'm sure they'll say it's DONE; we've got 12345 items and 3.14159 pies.",
    "def fib(n: int) -> int:\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",
    "for (let i = 0; i < 10; i++) {\n\tconsole.log(`i=${i}`);\n}",
    '{"name": "get_weather", "arguments": {"location": "New York", "unit": "fahrenheit"}}',
    '[{"type": "function", "function": {"name": "play_music", "parameters": {"duration": 20}}}]',
    "Emoji: 😀🎉👍🏽 👨‍👩‍👧‍👦 ❤️ 🇫🇷",
    "中文测试：今天天气很好。日本語のテキストです。한국어 문장입니다.",
    "Mixed   spaces\t\ttabs\n\n\nnewlines  \r\n trailing   ",
    "Ünïcödé façade naïve café — “quotes” and ‘apostrophes’ … ½ ¼ ∑ ∫ π",
    "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
    "   leading spaces and 2024-11-23T19:32:00Z timestamps 0x1F 1e-5",
]

CHAT_CONVERSATIONS: list[list[dict]] = [
    [{"role": "user", "content": "What's the weather like in New York in fahrenheit?"}],
    [
        {"role": "system", "content": "You are a helpful assistant with tool calling capabilities."},
        {"role": "user", "content": "Play Taylor Swift for 20 minutes 🎵"},
        {"role": "assistant", "content": '<tool_call>[{"name": "play", "arguments": {"minutes": 20}}]</tool_call>'},
        {"role": "user", "content": "谢谢! Now pause it."},
    ],
]


def render_chat(template: str, messages: list[dict], add_generation_prompt: bool = True,
                bos_token: str = "<|begin_of_text|>", tools: Optional[list] = None, **extra) -> str:
    """Render a Hugging Face chat template with jinja2 (as transformers does)."""
    import jinja2

    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.globals["raise_exception"] = lambda msg: (_ for _ in ()).throw(jinja2.TemplateError(msg))
    env.globals["strftime_now"] = lambda fmt: "23 Nov 2026"
    return env.from_string(template).render(messages=messages, add_generation_prompt=add_generation_prompt,
                                            bos_token=bos_token, tools=tools, **extra)


@dataclass
class TokenMismatch:
    text: str
    expected: list[int]  # tokenizers
    got: list[int]  # llama.cpp


def llama_vocab(gguf_path: Path):
    """A llama.cpp model loaded with its vocabulary only."""
    import llama_cpp

    return llama_cpp.Llama(str(gguf_path), vocab_only=True, verbose=False)


def tokenization_mismatches(gguf_path: Path, tokenizer_json: Path, texts: Sequence[str],
                            add_special: bool = False) -> list[TokenMismatch]:
    """Texts whose llama.cpp token ids differ from the `tokenizers` library's."""
    from tokenizers import Tokenizer

    ref = Tokenizer.from_file(str(tokenizer_json))
    llm = llama_vocab(gguf_path)
    out = []
    for text in texts:
        want = ref.encode(text, add_special_tokens=add_special).ids
        got = llm.tokenize(text.encode("utf-8"), add_bos=add_special, special=True)
        if want != got:
            out.append(TokenMismatch(text, want, got))
    return out


GGML_TYPE_F32 = 0


def _llama(gguf_path: Path, n_ctx: int, n_threads: int, f32_kv: bool):
    """A llama.cpp context returning all logits; f32_kv keeps the KV cache in F32 (default F16) so a
    comparison measures the weights, not the cache's rounding."""
    import llama_cpp

    kv = dict(type_k=GGML_TYPE_F32, type_v=GGML_TYPE_F32) if f32_kv else {}
    from ondevice.engine.hardware import place_weights

    place_weights()  # no AMX weights (they crash), as the runtime
    return llama_cpp.Llama(str(gguf_path), n_ctx=max(64, n_ctx), logits_all=True, n_threads=n_threads,
                           n_batch=512, verbose=False, **kv)


def llama_cpp_logits(gguf_path: Path, token_ids: Sequence[int], n_threads: int = 2,
                     f32_kv: bool = True) -> np.ndarray:
    """llama.cpp's logits for every position of token_ids, shape (len, vocab), float32."""
    llm = _llama(gguf_path, len(token_ids) + 8, n_threads, f32_kv)
    llm.eval(list(token_ids))
    return np.array(llm.scores[: len(token_ids)], dtype=np.float32)


def llama_cpp_greedy(gguf_path: Path, prompt_ids: Sequence[int], n_new: int, n_threads: int = 2,
                     f32_kv: bool = True) -> list[int]:
    """Greedy continuation (argmax of llama.cpp's logits), n_new tokens, no stopping at EOS."""
    llm = _llama(gguf_path, len(prompt_ids) + n_new + 8, n_threads, f32_kv)
    llm.eval(list(prompt_ids))
    out: list[int] = []
    for _ in range(n_new):
        nxt = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        out.append(nxt)
        llm.eval([nxt])
    return out


def transformers_model(checkpoint_dir: Path):
    import torch
    from transformers import LlamaForCausalLM

    model = LlamaForCausalLM.from_pretrained(str(checkpoint_dir), dtype=torch.float32)
    model.eval()
    return model


def transformers_logits(model, token_ids: Sequence[int]) -> np.ndarray:
    import torch

    with torch.no_grad():
        out = model(torch.tensor([list(token_ids)], dtype=torch.long))
    return out.logits[0].float().numpy()


def transformers_greedy(model, prompt_ids: Sequence[int], n_new: int) -> list[int]:
    import torch

    with torch.no_grad():
        prompt = torch.tensor([list(prompt_ids)])
        # an explicit mask: without it generate() masks every prompt token equal to pad_token_id
        ids = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=n_new, min_new_tokens=n_new,
                             do_sample=False, num_beams=1, eos_token_id=None, pad_token_id=0,
                             temperature=None, top_p=None, top_k=None)
    return ids[0, len(prompt_ids):].tolist()


@dataclass
class LogitComparison:
    positions: int
    top1_agreement: float  # fraction of positions with the same argmax
    max_abs_diff: float
    mean_abs_diff: float
    min_top1_margin: float  # smallest gap between the reference's best and second-best logit

    def __str__(self) -> str:
        return (f"{self.positions} positions: top-1 agreement {self.top1_agreement:.1%}, max |diff| "
                f"{self.max_abs_diff:.4g}, mean |diff| {self.mean_abs_diff:.4g}, min top-1 margin "
                f"{self.min_top1_margin:.4g}")


def compare_logits(reference: np.ndarray, candidate: np.ndarray) -> LogitComparison:
    if reference.shape != candidate.shape:
        raise ValueError(f"expected logits of shape {reference.shape}, got {candidate.shape}")
    diff = np.abs(reference.astype(np.float64) - candidate.astype(np.float64))
    top2 = np.sort(reference, axis=-1)[:, -2:]
    return LogitComparison(
        positions=reference.shape[0],
        top1_agreement=float(np.mean(reference.argmax(-1) == candidate.argmax(-1))),
        max_abs_diff=float(diff.max()),
        mean_abs_diff=float(diff.mean()),
        min_top1_margin=float((top2[:, 1] - top2[:, 0]).min()),
    )
