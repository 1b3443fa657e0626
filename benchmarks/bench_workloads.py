"""Benchmark: continuation scoring on five workloads, against lm-eval and a naive loop, with the compute bound.

Prints figures; asserts nothing about time. Run
``.venv/bin/python benchmarks/bench_workloads.py [--quick] [--threads N] [--device cpu|cuda] [--dtype ...]``.

Workloads (sizes for the full run; ``--quick`` takes 4 prompts of each, one timed run, to check the script):

=============  ==============  ==========================================================================
name           model           requests
=============  ==============  ==========================================================================
chat           SmolLM2-135M    24 arithmetic prompts, chat template + "The answer is", 5 numeric answers
capitals       SmolLM2-135M    30 capital prompts, half chat and half plain "Question: ... Answer:",
                               6 short answers each (" The capital is Lima.", " Lima", ...)
many-answers   SmolLM2-135M    8 capital prompts (chat) x 24 answers (every capital of a shuffled list)
long-answers   SmolLM2-135M    8 arithmetic prompts (chat) x 5 answers of 50-70 tokens (worked reasoning)
gemma          Gemma-3-270M    the capitals workload on 16 prompts (262k vocabulary)
=============  ==============  ==========================================================================

Methods, all in this process on the same loaded model and the same requests (times from strings):

- ``selfbias score_requests``: every prompt in one call (prefix-trie pass, the default);
- ``selfbias before (trie off)``: the same call with ``prefix_trie=False``: the two-pass path that was the
  only one before (contexts, then continuations on the gathered cache), for before/after;
- ``selfbias score() per prompt``: one ``score(lm, prompt, answers)`` call per prompt, as a notebook does;
- ``naive``: one forward per request over context + continuation, full logits, no cache or padding;
- ``lm-eval HFLM bs=16``: ``HFLM(pretrained=lm.model, tokenizer=lm.tokenizer, batch_size=16).loglikelihood``
  (skipped, with a line saying so, when lm-eval is not installed: ``pip install -e .[bench]``).

Compute bound: the script measures this machine's matmul rate (best of several ``torch.mm`` on the
model's own shapes: 256 tokens x hidden x intermediate and x hidden). A token costs 2 x N FLOPs, N = the
non-embedding parameters (all parameters minus the input embedding and an untied lm_head), plus 2 x V x H
for each vocabulary row of logits computed. "bound share" = FLOPs of the tokens a method actually
computed (padding excluded, shared prefixes once) / seconds / measured FLOP/s; "fed tok/s" counts the
same tokens.
"""

from __future__ import annotations

import argparse
import datetime
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from _common import best_of, machine, table  # noqa: E402

from selfbias.models import load_model  # noqa: E402
from selfbias.prompts import CHAT_TEMPLATE, render  # noqa: E402
from selfbias.scoring import encode, score, score_requests  # noqa: E402
from selfbias.tasks import arithmetic_task, capitals_task, numeric_perturbations  # noqa: E402

FULL = {"chat": 24, "capitals": 30, "many-answers": 8, "long-answers": 8, "gemma": 16}
QUICK = dict.fromkeys(FULL, 4)
MODELS = {"gemma": "gemma3-270m"}  # the rest: smollm2-135m


# ------------------------------------------------------------------------------------ workloads


def plain(question: str) -> str:
    return f"Question: {question}\nAnswer:"


def chat(lm, question: str) -> str:
    return render(CHAT_TEMPLATE, lm, question) if lm.has_chat_template else plain(question)


def arithmetic(lm, n: int):
    out = []
    for item in arithmetic_task("mixed", n=n, seed=0).items:
        ref, wrong = item.references[0], numeric_perturbations(item.references[0])
        out.append((chat(lm, item.question), [" " + ref, " " + wrong[0], " " + wrong[1] + ".", " " + wrong[2],
                                              " " + wrong[3]]))
    return out


def capitals(lm, n: int):
    items = capitals_task(n=n + 5, seed=0).items
    pool = [it.references[0] for it in items]
    out = []
    for i, item in enumerate(items[:n]):
        right, wrong = item.references[0], [c for c in pool if c != item.references[0]][i % 4: i % 4 + 2]
        prompt = chat(lm, item.question) if i % 2 == 0 else plain(item.question)
        answers = [f" The capital is {right}.", f" {right}", f" The capital is {wrong[0]}.", f" {wrong[0]}",
                   f" {wrong[1]}.", f" It is {right}, I think."]
        out.append((prompt, answers))
    return out


def many_answers(lm, n: int):
    items = capitals_task(n=n + 24, seed=1).items
    pool = [it.references[0] for it in items]
    return [(chat(lm, item.question), [f" The capital is {c}." for c in pool[i: i + 24]])
            for i, item in enumerate(items[:n])]


def long_answers(lm, n: int):
    rng = random.Random(0)
    out = []
    for item in arithmetic_task("mixed", n=n, seed=1).items:
        ref = item.references[0]
        answers = []
        for guess in [ref, *numeric_perturbations(ref)]:
            steps = [f"First I read the question carefully: {item.question}",
                     "I split the numbers into tens and units and add or subtract each part in turn.",
                     f"Carrying where needed, the parts give {rng.randint(2, 90)} and {rng.randint(2, 90)}.",
                     "Putting the parts back together and checking the sign of the result,"]
            answers.append(" " + " ".join(steps) + f" the final answer is {guess}.")
        out.append((chat(lm, item.question), answers))
    return out


WORKLOADS = {"chat": arithmetic, "capitals": capitals, "many-answers": many_answers,
             "long-answers": long_answers, "gemma": capitals}


# --------------------------------------------------------------------------------------- methods


def run_selfbias(lm, requests, **kw):
    return [list(s.logprobs) for row in score_requests(lm, requests, **kw) for s in row]


def run_score_each(lm, requests):
    return [list(s.logprobs) for prompt, answers in requests for s in score(lm, prompt, answers)]


def run_naive(lm, requests):
    out = []
    with torch.inference_mode():
        for prompt, answers in requests:
            for answer in answers:
                (enc,) = encode(lm, prompt, [answer])
                ctx, ids = list(enc.context), list(enc.continuations[0])
                logits = lm.model(input_ids=torch.tensor([ctx + ids], device=lm.device), use_cache=False).logits[0]
                logprobs = torch.log_softmax(logits.float(), dim=-1)[len(ctx) - 1: len(ctx) + len(ids) - 1]
                out.append(logprobs.gather(1, torch.tensor(ids, device=lm.device)[:, None])[:, 0].tolist())
    return out


def make_hflm(lm):
    import logging

    from lm_eval.models.huggingface import HFLM

    for name in ("lm-eval", "lm_eval"):
        logging.getLogger(name).setLevel(logging.ERROR)
    return HFLM(pretrained=lm.model, tokenizer=lm.tokenizer, batch_size=16)


def run_lm_eval(hflm, requests):
    from lm_eval.api.instance import Instance

    pairs = [(p, a) for p, answers in requests for a in answers]
    instances = [Instance(request_type="loglikelihood", doc={}, arguments=pair, idx=i) for i, pair in enumerate(pairs)]
    return [lp for lp, _ in hflm.loglikelihood(instances, disable_tqdm=True)]


# --------------------------------------------------------------------------------- compute bound


def model_flops(lm) -> tuple[int, int]:
    """(FLOPs per computed token = 2 x non-embedding parameters, FLOPs per vocabulary row of logits)."""
    model = lm.model
    inp, out = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    skip = {id(inp), id(out)}
    n = sum(p.numel() for p in model.parameters() if id(p) not in skip)
    return 2 * n, 2 * out.shape[0] * out.shape[1]


def matmul_rate(lm, tokens: int = 256, repeats: int = 20) -> float:
    """Best FLOP/s of torch.mm on the model's shapes (tokens x hidden @ hidden x {intermediate, hidden})."""
    cfg = lm.model.config.get_text_config()
    h, inter = cfg.hidden_size, cfg.intermediate_size
    dtype, device = lm.model.dtype, lm.device
    best = 0.0
    for k, m in ((h, inter), (inter, h), (h, h)):
        a = torch.randn(tokens, k, dtype=dtype, device=device)
        b = torch.randn(k, m, dtype=dtype, device=device)
        torch.mm(a, b)
        for _ in range(repeats):
            _sync(lm)
            t = time.perf_counter()
            torch.mm(a, b)
            _sync(lm)
            best = max(best, 2 * tokens * k * m / (time.perf_counter() - t))
    return best


def _sync(lm):
    if lm.device.type == "cuda":
        torch.cuda.synchronize()


class Counter:
    """Counts real tokens and logit rows fed to the model while installed (untimed runs only).

    Real tokens: a 2D attention mask's ones in the new columns; with the trie pass's 4D masks, every
    position but the pads (pad id at position 0). Where the scorer runs the decoder alone and applies
    the head itself (``selfbias._logits``), the logit rows are the positions it reads; otherwise the
    rows the model's ``logits_to_keep`` asks for. The overhead is a few integer sums per forward."""

    def __init__(self, lm):
        self.lm, self.tokens, self.padded, self.logit_rows, self.calls = lm, 0, 0, 0, 0

    def _count_tokens(self, kw):
        ids, mask = kw["input_ids"], kw.get("attention_mask")
        self.calls += 1
        self.padded += ids.numel()
        if isinstance(mask, torch.Tensor) and mask.ndim == 2:
            self.tokens += int(mask[:, -ids.shape[1]:].sum())
        elif mask is None:
            self.tokens += ids.numel()
        else:
            pads = (kw["position_ids"] == 0) & (ids == self.lm.tokenizer.pad_token_id)
            self.tokens += ids.numel() - int(pads.sum())

    def __enter__(self):
        if self.lm is None:  # not counting
            return self
        import selfbias.scoring as scoring

        model, decoder = self.lm.model, self.lm.model.base_model
        real_model, real_decoder, real_read = model.forward, decoder.forward, scoring.read_head

        def counting_model(*args, **kw):
            self._count_tokens(kw)
            keep = kw.get("logits_to_keep", 0)
            if isinstance(keep, torch.Tensor) and keep.dtype == torch.bool:
                self.logit_rows += int(keep.sum())
            elif isinstance(keep, int) and keep > 0:
                self.logit_rows += keep * kw["input_ids"].shape[0]
            else:
                self.logit_rows += kw["input_ids"].numel()
            return real_model(*args, **kw)

        def counting_decoder(*args, **kw):
            self._count_tokens(kw)
            return real_decoder(*args, **kw)

        def counting_read(lm, kept, *args, **kw):
            if not kept.is_logits:  # the head runs here, on every kept position
                self.logit_rows += kept.states.shape[0]
            return real_read(lm, kept, *args, **kw)

        model.forward, decoder.forward, scoring.read_head = counting_model, counting_decoder, counting_read
        self._restore = lambda: (delattr(model, "forward"), delattr(decoder, "forward"),
                                 setattr(scoring, "read_head", real_read))
        return self

    def __exit__(self, *exc):
        if self.lm is not None:
            self._restore()  # back to the classes' methods and the module's function


# ------------------------------------------------------------------------------------------- main


def bench(name, lm, n, repeats, hflm, rate) -> tuple[list, list]:
    requests = WORKLOADS[name](lm, n)
    n_req = sum(len(a) for _, a in requests)
    encoded = [(e.context, c) for p, a in requests for e in encode(lm, p, a) for c in e.continuations]
    scored = sum(len(c) for _, c in encoded)
    per_token, per_row = model_flops(lm)
    methods = {
        "selfbias score_requests": lambda: run_selfbias(lm, requests),
        "selfbias before (trie off)": lambda: run_selfbias(lm, requests, prefix_trie=False),
        "selfbias score() per prompt": lambda: run_score_each(lm, requests),
        "naive, one forward per request": lambda: run_naive(lm, requests),
    }
    run_selfbias(lm, requests[:2]), run_naive(lm, requests[:1])  # warm-up
    fed = {"naive, one forward per request": (sum(len(a) + len(b) for a, b in encoded),) * 2}
    if hflm is not None:
        methods["lm-eval HFLM bs=16"] = lambda: run_lm_eval(hflm, requests)
        distinct = {tuple(a) + tuple(b[:-1]) for a, b in (hflm._encode_pair(p, x) for p, ans in requests for x in ans)}
        fed["lm-eval HFLM bs=16"] = (sum(map(len, distinct)),) * 2
        run_lm_eval(hflm, requests[:1])
    times, results = {k: [] for k in methods}, {}
    for r in range(repeats):  # rounds interleave the methods so a change in load hits them alike
        for label, fn in methods.items():
            if "naive" in label and r > 0:
                continue
            counting = r == 0 and label.startswith("selfbias")  # the first round also counts tokens fed
            with Counter(lm if counting else None) as c:
                _sync(lm)
                seconds, results[label], _ = best_of(fn, 1)
                _sync(lm)
            times[label].append(seconds)
            if counting:
                fed[label] = (c.tokens, c.logit_rows)
    naive = results["naive, one forward per request"]
    lm_eval_s = min(times["lm-eval HFLM bs=16"]) if hflm is not None else None
    rows = []
    for label in methods:
        s = min(times[label])
        tokens, logit_rows = fed[label]
        flops = per_token * tokens + per_row * logit_rows
        res = results[label]
        if label.startswith("lm-eval"):
            diff = max(abs(sum(x) - y) for x, y in zip(naive, res))
        else:
            diff = max(abs(a - b) for x, y in zip(naive, res) for a, b in zip(x, y))
        rows.append([label, f"{s:.2f}", f"{scored / s:.0f}", tokens, f"{tokens / s:.0f}",
                     f"{100 * flops / s / rate:.0f}%",
                     f"{lm_eval_s / s:.2f}x" if lm_eval_s else "-",
                     f"{min(times['naive, one forward per request']) / s:.2f}x", f"{diff:.1e}"])
    ctx = [len(a) for a, _ in encoded]
    head = (f"== {name}: {len(requests)} prompts, {n_req} requests, context {min(ctx)}-{max(ctx)} tokens, "
            f"continuations {min(len(c) for _, c in encoded)}-{max(len(c) for _, c in encoded)} tokens "
            f"({scored} scored); {lm.name} {str(lm.model.dtype).replace('torch.', '')} {lm.device.type}, "
            f"{torch.get_num_threads()} thread(s); best of {repeats} (naive: 1) ==")
    return head, rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 prompts per workload, one timed run")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds (default 2; 1 with --quick)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1; 0 keeps torch's)")
    parser.add_argument("--only", nargs="*", choices=list(WORKLOADS), help="run these workloads only")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--no-lm-eval", action="store_true", help="skip lm-evaluation-harness")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = QUICK if args.quick else FULL
    repeats = args.repeats or (1 if args.quick else 2)
    started = time.perf_counter()
    print(f"bench_workloads  {datetime.datetime.now():%Y-%m-%d %H:%M}  {machine()}")
    loaded = {}
    for name in args.only or list(WORKLOADS):
        model = MODELS.get(name, "smollm2-135m")
        if model not in loaded:
            lm = load_model(model, device=args.device, dtype=getattr(torch, args.dtype))
            hflm = None
            if not args.no_lm_eval:
                try:
                    hflm = make_hflm(lm)
                except ImportError as exc:
                    print(f"lm-eval not installed ({exc}): its column is '-'; `pip install -e .[bench]`")
            rate = matmul_rate(lm)
            per_token, per_row = model_flops(lm)
            print(f"{model}: measured matmul {rate / 1e9:.1f} GFLOP/s; {per_token // 2 / 1e6:.1f}M non-embedding "
                  f"parameters -> compute bound {rate / per_token:.0f} tokens/s (+{per_row / 1e6:.0f} MFLOP per "
                  f"logit row)")
            loaded[model] = (lm, hflm, rate)
        lm, hflm, rate = loaded[model]
        head, rows = bench(name, lm, sizes[name], repeats, hflm, rate)
        print()
        print(head)
        print(table(["method", "best s", "scored tok/s", "tokens fed", "fed tok/s", "bound share", "vs lm-eval",
                     "vs naive", "max |dlogp| vs naive"], rows))
    print("\ntokens fed: tokens run through the model, padding excluded, shared prefixes once; bound share: "
          "their FLOPs (2 x non-embedding params each, plus logit rows) per second / measured matmul FLOP/s; "
          "|dlogp|: per token (lm-eval: per continuation sum)")
    print(f"total benchmark time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
