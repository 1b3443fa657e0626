"""Benchmark: continuation scoring and batched generation on SmolLM2-135M (fp32, CPU).

Prints figures; asserts nothing about time. Run with ``make bench`` or
``.venv/bin/python benchmarks/bench_scoring.py [--quick] [--repeats N]``.

Workload: 60 arithmetic prompts (``arithmetic_task("mixed", n=60, seed=0)``) rendered with
``CHAT_TEMPLATE`` (ending in "The answer is"), each with 5 distinct multi-token numeric
continuations (the reference and four perturbations, with a leading space; one of them ends in ".").
All three scorers run in this process on the same loaded model and the same 300 requests:

(a) ``selfbias.scoring.score_requests(lm, requests)`` with its default batching;
(b) a naive loop: one forward per request over context + continuation (no padding, no cache,
    full logits, log_softmax, gather);
(c) lm-evaluation-harness ``HFLM(pretrained=lm.model, tokenizer=lm.tokenizer, batch_size=16)
    .loglikelihood`` on the same (context, continuation) strings.

Then generation: 4 samples for each prompt with one ``generate`` call, against one ``generate`` call
per prompt (n=4 each); both must give identical samples (seeded per prompt and sample).

The selfbias scorer runs first, so the peak resident memory printed after it reflects the model plus
the scorer; the peak at the end includes everything else. Later rounds interleave the methods so that
a change in machine load hits them alike; the best time of each is reported. Torch runs on 1 thread
unless ``--threads`` says otherwise (see benchmarks/README.md for why).
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import best_of, machine, peak_rss_mb, rss_now_mb, table  # noqa: E402

import torch  # noqa: E402

from selfbias.generation import generate  # noqa: E402
from selfbias.models import load_model  # noqa: E402
from selfbias.prompts import CHAT_TEMPLATE, render  # noqa: E402
from selfbias.scoring import encode, score_requests  # noqa: E402
from selfbias.tasks import arithmetic_task, numeric_perturbations  # noqa: E402

MODEL = "smollm2-135m"
N_CANDIDATES = 5
GEN_KW = dict(n=4, temperature=0.7, max_new_tokens=16, stop=("\n",), seed=0)


# ------------------------------------------------------------------------------------- workload


def build_workload(lm, n_prompts: int) -> list[tuple[str, list[str]]]:
    """(prompt, 5 continuations) per item: reference, +1, -1 (with a trailing "."), +10, -10."""
    requests = []
    for item in arithmetic_task("mixed", n=n_prompts, seed=0).items:
        prompt = render(CHAT_TEMPLATE, lm, item.question)
        ref = item.references[0]
        wrong = numeric_perturbations(ref)
        conts = [" " + ref, " " + wrong[0], " " + wrong[1] + ".", " " + wrong[2], " " + wrong[3]]
        if len(set(conts)) != N_CANDIDATES:
            raise RuntimeError(f"candidates of {item.id} are not distinct: {conts}")
        for enc in encode(lm, prompt, conts):
            if enc.join_overlaps != (0,) * len(enc.join_overlaps) or min(map(len, enc.continuations)) < 2:
                raise RuntimeError(f"workload: {item.id} has a single-token or straddling continuation")
        requests.append((prompt, conts))
    return requests


def flat_pairs(requests):
    return [(prompt, cont) for prompt, conts in requests for cont in conts]


# --------------------------------------------------------------------------------------- scorers


def run_selfbias(lm, requests) -> list[list[float]]:
    scores = score_requests(lm, requests)
    return [list(s.logprobs) for row in scores for s in row]


def run_naive(lm, requests) -> list[list[float]]:
    """One forward per (prompt, continuation): the whole sequence, full logits, no cache or padding."""
    out = []
    with torch.inference_mode():
        for prompt, cont in flat_pairs(requests):
            (enc,) = encode(lm, prompt, [cont])  # same context/continuation split as selfbias
            ctx, ids = list(enc.context), list(enc.continuations[0])
            seq = torch.tensor([ctx + ids], device=lm.device)
            logits = lm.model(input_ids=seq, use_cache=False).logits[0]  # [L, V]
            logprobs = torch.log_softmax(logits.float(), dim=-1)
            rows = logprobs[len(ctx) - 1: len(ctx) + len(ids) - 1]
            out.append(rows.gather(1, torch.tensor(ids, device=lm.device)[:, None])[:, 0].tolist())
    return out


def make_hflm(lm):
    import logging

    from lm_eval.models.huggingface import HFLM

    for name in ("lm-eval", "lm_eval"):
        logging.getLogger(name).setLevel(logging.ERROR)
    return HFLM(pretrained=lm.model, tokenizer=lm.tokenizer, batch_size=16)


def run_lm_eval(hflm, requests) -> list[float]:
    from lm_eval.api.instance import Instance

    instances = [Instance(request_type="loglikelihood", doc={}, arguments=(prompt, cont), idx=i)
                 for i, (prompt, cont) in enumerate(flat_pairs(requests))]
    return [logprob for logprob, _ in hflm.loglikelihood(instances, disable_tqdm=True)]


# ------------------------------------------------------------------------------------------ main


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="12 prompts instead of 60")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed runs of selfbias, lm-eval and batched generate; best reported "
                             "(default 3 with --quick, else 2)")
    parser.add_argument("--slow-repeats", type=int, default=None,
                        help="timed runs of the slow baselines: naive loop, one-prompt-per-call generate "
                             "(default 2 with --quick, else 1)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1; 0 keeps torch's default). On a small shared "
                             "machine OpenMP's spinning threads can make 2 threads ~10x slower than 1")
    parser.add_argument("--no-lm-eval", action="store_true", help="skip lm-evaluation-harness")
    parser.add_argument("--no-generate", action="store_true", help="skip the generation benchmark")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    n_prompts = 12 if args.quick else 60
    repeats = args.repeats or (3 if args.quick else 2)
    slow_repeats = args.slow_repeats or (2 if args.quick else 1)
    started = time.perf_counter()

    print(f"bench_scoring  {datetime.datetime.now():%Y-%m-%d %H:%M}  {machine()}")
    lm = load_model(MODEL)
    rss_loaded = peak_rss_mb()
    requests = build_workload(lm, n_prompts)
    encoded = [e for prompt, conts in requests for e in encode(lm, prompt, conts)]
    n_requests = sum(len(c) for _, c in requests)
    cont_lens = [len(c) for e in encoded for c in e.continuations]
    scored = sum(cont_lens)
    ctx_tokens = sum(len(e.context) * len(e.continuations) for e in encoded)
    unique_ctx = sum(len(e.context) for e in {e.context: e for e in encoded}.values())
    print(f"model {lm!r}; peak RSS after load {rss_loaded:.0f} MiB")
    print(f"workload: {n_prompts} prompts x {N_CANDIDATES} continuations = {n_requests} requests; "
          f"context {min(len(e.context) for e in encoded)}-{max(len(e.context) for e in encoded)} tokens, "
          f"continuation {min(cont_lens)}-{max(cont_lens)} tokens ({scored} scored); "
          f"best of {repeats} (slow baselines: {slow_repeats})")
    print(f"example: ...{requests[0][0][-40:]!r} + {requests[0][1]}")

    # Tokens each method feeds through the model (excluding padding).
    fed = {
        "selfbias": unique_ctx + sum(n - 1 for n in cont_lens),  # contexts once, then x0..x(n-2)
        "naive": ctx_tokens + scored,  # the whole sequence per request
        "lm-eval": ctx_tokens + scored - n_requests,  # ctx + cont[:-1] per request; less after its dedup
    }
    times: dict[str, list[float]] = {"selfbias": [], "naive": [], "lm-eval": []}

    def timed(name, fn):
        seconds, result, _ = best_of(fn, 1)
        times[name].append(seconds)
        return result

    # (a) selfbias first, so that the peak RSS below reflects the model plus the scorer.
    run_selfbias(lm, requests[:2])  # warm-up
    rss_warm = rss_now_mb()
    sb = timed("selfbias", lambda: run_selfbias(lm, requests))
    rss_selfbias = peak_rss_mb()
    print(f"(a) selfbias score_requests: {times['selfbias'][0]:.2f} s; peak RSS {rss_selfbias:.0f} MiB "
          f"(RSS after model load + warm-up: {rss_warm or float('nan'):.0f} MiB)")

    hflm = None
    if not args.no_lm_eval:
        try:
            hflm = make_hflm(lm)
        except ImportError as exc:
            print(f"(c) lm-eval not installed ({exc}); `pip install -e .[bench]`")
    harness = None
    if hflm is not None:
        pairs = [hflm._encode_pair(p, c) for p, c in flat_pairs(requests)]
        ours = [c for e in encoded for c in e.continuations]
        mismatched = sum(tuple(b) != c for (_, b), c in zip(pairs, ours))
        distinct = {tuple(a) + tuple(b[:-1]) for a, b in pairs}
        n_seqs = len(distinct)
        fed["lm-eval"] = sum(map(len, distinct))  # what it actually runs (unpadded)
        print(f"(c) lm-eval: continuation split differs from selfbias in {mismatched}/{n_requests} requests; "
              f"it runs {n_seqs} sequences after its ctx+cont[:-1] dedup")
        run_lm_eval(hflm, requests[:2])  # warm-up
    run_naive(lm, requests[:1])  # warm-up

    # Rounds interleave the methods so that a change in machine load hits them alike.
    for r in range(max(repeats, slow_repeats)):
        if r > 0 and r < repeats:
            timed("selfbias", lambda: run_selfbias(lm, requests))
        if r < slow_repeats:
            naive = timed("naive", lambda: run_naive(lm, requests))
        if hflm is not None and r < repeats:
            harness = timed("lm-eval", lambda: run_lm_eval(hflm, requests))
        print(f"  round {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items() if len(v) > r))
    results = {k: dict(seconds=min(v), times=v) for k, v in times.items() if v}

    # accuracy
    tok_diff = max(abs(a - b) for x, y in zip(sb, naive) for a, b in zip(x, y))
    sum_diff = max(abs(sum(x) - sum(y)) for x, y in zip(sb, naive))
    lm_diff = max(abs(sum(x) - y) for x, y in zip(sb, harness)) if harness else None
    lm_naive = max(abs(sum(x) - y) for x, y in zip(naive, harness)) if harness else None

    # generation
    gen = None
    if not args.no_generate:
        prompts = [p for p, _ in requests]
        generate(lm, prompts[:1], **{**GEN_KW, "max_new_tokens": 4})  # warm-up
        t_batch, batched, tb = best_of(lambda: generate(lm, prompts, **GEN_KW), repeats)
        print(f"generate, all prompts in one call: {_fmt(tb)} s")
        t_single, single, ts = best_of(lambda: [generate(lm, [p], **GEN_KW)[0] for p in prompts], slow_repeats)
        print(f"generate, one prompt per call:     {_fmt(ts)} s")
        differ = sum(a.token_ids != b.token_ids or a.text != b.text
                     for ra, rb in zip(batched, single) for a, b in zip(ra, rb))
        n_gen = sum(len(g.token_ids) for row in batched for g in row)
        gen = dict(t_batch=t_batch, t_single=t_single, differ=differ, n_gen=n_gen,
                   n_samples=sum(len(r) for r in batched))

    rss_end = peak_rss_mb()

    # ---------------------------------------------------------------------------------- tables
    print()
    print(f"== Scoring: {n_requests} requests ({n_prompts} prompts x {N_CANDIDATES}), {scored} scored "
          f"continuation tokens, SmolLM2-135M fp32 CPU, {torch.get_num_threads()} thread(s) ==")
    rows = []
    for name, label in (("selfbias", "(a) selfbias score_requests"), ("naive", "(b) naive loop"),
                        ("lm-eval", "(c) lm-eval HFLM bs=16")):
        if name in results:
            s = results[name]["seconds"]
            rows.append([label, f"{s:.2f}", _fmt(results[name]["times"]), f"{scored / s:.1f}", fed[name],
                         f"{fed[name] / s:.0f}", f"{results['naive']['seconds'] / s:.2f}x"])
    print(table(["method", "best s", "runs (s)", "scored tok/s", "tokens fed", "fed tok/s", "vs naive"], rows))
    print("tokens fed: tokens run through the model, padding excluded (selfbias: each distinct context once, "
          "then each continuation but its last token; naive: context + continuation per request; lm-eval: "
          "context + continuation[:-1] per distinct sequence)")
    print()
    ratio_rows = [["selfbias / naive (speed-up)", _ratio(results, "naive", "selfbias"), "-"]]
    if "lm-eval" in results:
        ratio_rows.insert(0, ["selfbias / lm-eval (speed-up)", _ratio(results, "lm-eval", "selfbias"), ">= 3x"])
        ratio_rows.append(["lm-eval / naive (speed-up)", _ratio(results, "naive", "lm-eval"), "-"])
    ratio_rows += [
        ["max |dlogp| selfbias vs naive, per token", f"{tok_diff:.2e}", "<= 1e-4"],
        ["max |dlogp| selfbias vs naive, per continuation sum", f"{sum_diff:.2e}", "<= 1e-4"],
    ]
    if lm_diff is not None:
        ratio_rows += [["max |dlogp| selfbias vs lm-eval, per continuation sum", f"{lm_diff:.2e}", "<= 1e-4"],
                       ["max |dlogp| naive vs lm-eval, per continuation sum", f"{lm_naive:.2e}", "-"]]
    ratio_rows += [
        ["peak RSS after model load (MiB)", f"{rss_loaded:.0f}", "-"],
        ["RSS after load + warm-up (MiB)", f"{rss_warm:.0f}" if rss_warm else "-", "-"],
        ["peak RSS after selfbias scorer (MiB)", f"{rss_selfbias:.0f}", "< 2048"],
        ["peak RSS at end of benchmark (MiB)", f"{rss_end:.0f}", "-"],
    ]
    print(table(["figure", "value", "target"], ratio_rows))
    if gen:
        print()
        print(f"== Generation: {n_prompts} prompts x 4 samples, T=0.7, max 16 new tokens, stop '\\n'; "
              f"{gen['n_gen']} tokens generated ==")
        print(table(["method", "best s", "gen tok/s"], [
            ["generate(all prompts, n=4)", f"{gen['t_batch']:.2f}", f"{gen['n_gen'] / gen['t_batch']:.1f}"],
            ["generate([p], n=4) per prompt", f"{gen['t_single']:.2f}", f"{gen['n_gen'] / gen['t_single']:.1f}"],
        ]))
        print()
        print(table(["figure", "value", "target"], [
            ["batched / one-prompt-per-call (speed-up)", f"{gen['t_single'] / gen['t_batch']:.2f}x", ">= 3x"],
            ["samples that differ", f"{gen['differ']} / {gen['n_samples']}", "0"],
        ]))
    print(f"\ntotal benchmark time {time.perf_counter() - started:.0f} s")
    return 0


def _ratio(results, slow: str, fast: str) -> str:
    return f"{results[slow]['seconds'] / results[fast]['seconds']:.2f}x"


def _fmt(times) -> str:
    return "[" + ", ".join(f"{t:.2f}" for t in times) + "]"


if __name__ == "__main__":
    sys.exit(main())
