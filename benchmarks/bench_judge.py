"""Benchmark: judge workload (P(Yes) and pairwise next-token reads) on SmolLM2-135M (fp32, CPU).

Prints figures; asserts nothing about time. Run with ``make bench`` or
``.venv/bin/python benchmarks/bench_judge.py [--quick] [--items N] [--repeats N] [--threads N]``.

Workload: ``arithmetic_task("mixed", n=N, seed=0)`` (N = 16, 6 with ``--quick``) written into a
temporary run without the probe: per item the reference and three numeric perturbations, the
first perturbation playing the model's own greedy answer and the model's "samples" being
[perturbation 1, reference, perturbation 2]; 4 or 5 candidates per item. The judge is SmolLM2 itself
in the modes isolated, own_samples, alternatives (k=3) and pairwise (k=3, both orders), chat format.

Three ways of reading the same prompts (built once with ``selfbias.judge.judge_prompts``):

(a) ``selfbias.judge.judge(run)`` end to end (rendering, shared-prefix reads, Parquet chunks, finalize);
(b) the judge's read alone: ``next_token_logprobs(lm, [(prefix, [suffix, ...]), ...])``: each item's
    shared prefix (everything before the proposed answer) runs once, its KV cache serves every
    suffix, and only the last position's logits are computed;
(c) a straightforward loop: one forward per full prompt (no cache, no padding, full logits), softmax
    of the last position, sum of the option spellings.

Figures: judgments/s of each, the speed-up of (a) and (b) over (c), and the largest |P(Yes)| difference
between the judge's table and (c).

Shared root (``--shared`` runs only this section): one judge chunk (16 items, ``--items``) read with
``next_token_logprobs`` as the judge calls it, with the leading tokens every prompt shares (the
few-shot block) read once for the call (``shared_prefix=True``, the default) and without
(``shared_prefix=False``: each batch reads them again), on four workloads: isolated and
alternatives (k=3, pooled design, three outside perturbations per item), zero-shot and 4-shot. The two
readers alternate within each repeat; printed: times, the ratio, and the largest |P(Yes)| and
log-prob differences between them (``--naive`` adds one forward per whole prompt).
"""

from __future__ import annotations

import argparse
import datetime
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import best_of, machine, peak_rss_mb, table  # noqa: E402

import pandas as pd  # noqa: E402
import torch  # noqa: E402

from selfbias.judge import find_option_tokens, judge, judge_prompts  # noqa: E402
from selfbias.models import load_model  # noqa: E402
from selfbias.runs import RunStore  # noqa: E402
from selfbias._batching import token_ids  # noqa: E402
from selfbias import scoring  # noqa: E402
from selfbias.scoring import _common_prefix, next_token_logprobs  # noqa: E402
from selfbias.tasks import arithmetic_task, numeric_perturbations  # noqa: E402

MODEL = "smollm2-135m"
MODES = ("isolated", "own_samples", "alternatives", "pairwise")
K = 3


# ------------------------------------------------------------------------------------- workload


def build_run(path: Path, n_items: int, outside: int = 0) -> None:
    """A finished run with items, candidates and generations (no model involved); ``outside``: that
    many more perturbations the model did not write (an outside pool for the ``alternatives`` list)."""
    task = arithmetic_task("mixed", n=n_items, seed=0)
    store = RunStore.open(path, {"models": [{"name": MODEL}], "task": {"name": task.name}, "bench": "judge"})
    cands, gens = [], []
    for item in task.items:
        ref = item.references[0]
        perts = numeric_perturbations(ref, 3 + outside)
        wrong = perts[:3]
        greedy, samples = wrong[0], [wrong[1], ref, wrong[2]]
        entries = ([(greedy, "own_greedy", MODEL)] + [(s, "own_sample", MODEL) for s in samples]
                   + [(ref, "reference", "dataset")]
                   + [(w, "perturbation", "perturbation") for w in wrong + perts[3:3 + outside]])
        merged: dict[str, dict] = {}
        for text, source, author in entries:
            row = merged.setdefault(text, {"sources": [], "authors": []})
            if (source, author) not in zip(row["sources"], row["authors"]):
                row["sources"].append(source)
                row["authors"].append(author)
        for k, (text, row) in enumerate(merged.items()):
            cands.append({"item_id": item.id, "candidate_id": f"{item.id}#{k}", "text": text,
                          "source": row["sources"][0], "sources": row["sources"], "authors": row["authors"],
                          "correct": text == ref})
        for kind, index, answer in [("greedy", 0, greedy)] + [("sample", i, s) for i, s in enumerate(samples)]:
            gens.append({"item_id": item.id, "model": MODEL, "kind": kind, "sample_index": index,
                         "raw_text": answer, "answer": answer, "correct": answer == ref, "token_ids": [0],
                         "logprobs": [0.0], "finish_reason": "eos"})
    store.write_chunk("items", "task", "0", task.to_frame())
    store.write_chunk("candidates", "bench", "0", pd.DataFrame(cands))
    store.write_chunk("generations", "bench", "0", pd.DataFrame(gens))
    store.finalize()
    store.close()


def all_prompts(lm, run_path: Path) -> pd.DataFrame:
    frames = [judge_prompts(run_path, lm, mode, k=K).assign(mode=mode) for mode in MODES]
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------------------- readers


def _p_first(logp: dict[int, float], first, second, chosen_second: bool) -> float:
    a = sum(math.exp(logp[t]) for t in first)
    b = sum(math.exp(logp[t]) for t in second)
    return (b if chosen_second else a) / (a + b)


def _options(lm, prompts: pd.DataFrame) -> dict[str, tuple[list[int], list[int]]]:
    out = {}
    for words in {tuple(o) for o in prompts.options}:
        out["|".join(words)] = (find_option_tokens(lm.tokenizer, words[0]), find_option_tokens(lm.tokenizer, words[1]))
    return out


def read_shared(lm, prompts: pd.DataFrame, options) -> list[float]:
    """(b): what the judge does: one request per distinct prefix, its suffixes sharing the cache."""
    out = [math.nan] * len(prompts)
    for key, (first, second) in options.items():
        rows = prompts[prompts.options.map("|".join) == key]
        groups: dict[str, list[int]] = {}
        for i, prefix in zip(rows.index, rows.prompt_prefix):
            groups.setdefault(prefix, []).append(i)
        res = next_token_logprobs(lm, [(p, [prompts.prompt_suffix[i] for i in idx]) for p, idx in groups.items()],
                                  select=first + second, top_k=5)
        for idx, nts in zip(groups.values(), res):
            for i, nt in zip(idx, nts):
                out[i] = _p_first(nt.selected, first, second, prompts.order[i] == 1)
    return out


def read_naive(lm, prompts: pd.DataFrame, options) -> list[float]:
    """(c): one forward per full prompt, all logits, softmax of the last position."""
    out = []
    with torch.inference_mode():
        for prompt, opts, order in zip(prompts.prompt, prompts.options, prompts.order):
            first, second = options["|".join(opts)]
            ids = lm.tokenizer(prompt, add_special_tokens=False)["input_ids"]
            if lm.adds_bos:
                ids = [lm.tokenizer.bos_token_id] + ids
            logits = lm.model(input_ids=torch.tensor([ids], device=lm.device), use_cache=False).logits[0, -1]
            logp = torch.log_softmax(logits.float(), -1)
            out.append(_p_first({t: logp[t].item() for t in first + second}, first, second, order == 1))
    return out


def run_judge(lm, template: Path, work: Path) -> pd.DataFrame:
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(template, work)
    return judge(work, modes=MODES, k=K, models={MODEL: lm}, progress=False).judgments


# ------------------------------------------------------- shared root: few-shot block read once a call


SHARED_WORKLOADS = (("isolated", 0), ("isolated", 4), ("alternatives", 0), ("alternatives", 4))


def _requests(prompts: pd.DataFrame) -> list[tuple[str, list[str]]]:
    """The judge's requests for one chunk: one per distinct prefix (selfbias.judge._read_verdicts)."""
    groups: dict[str, list[int]] = {}
    for i, prefix in enumerate(prompts.prompt_prefix):
        groups.setdefault(prefix, []).append(i)
    return [(prefix, [prompts.prompt_suffix[i] for i in idx]) for prefix, idx in groups.items()]


def tokens_run(lm, fn) -> tuple[int, int]:
    """(forward passes, tokens they ran, pads included) while ``fn()`` runs: what a reader costs,
    whatever the machine's load."""
    from selfbias._logits import plain_head

    module = lm.model.base_model if plain_head(lm) else lm.model
    real, seen = module.forward, []

    def spy(*args, **kwargs):
        seen.append(kwargs["input_ids"].numel())
        return real(*args, **kwargs)

    module.forward = spy
    try:
        fn()
    finally:
        del module.forward  # back to the class's method
    return len(seen), sum(seen)


def shared_section(n_items: int, repeats: int, naive: bool = False) -> list[dict]:
    """Few-shot judge reads with the shared root (``next_token_logprobs(shared_prefix=True)``, the
    default) against the same reads without it (``shared_prefix=False``: every batch reads the
    few-shot block again), on zero-shot and 4-shot prompts, isolated and a list mode (alternatives,
    k=3, pooled design), one judge chunk of ``n_items`` items (the judge reads a chunk per call).
    Three readers: unshared; shared, first chunk (no root kept from an earlier call: it is read in
    the call); shared, later chunk (the root kept from the previous call, as the judge's next chunk
    of items with the same few-shot block finds it). They alternate within each repeat; ratios are
    from this run only."""
    lm = load_model(MODEL)
    tmp = Path(tempfile.mkdtemp(prefix="bench_shared_"))
    rows = []
    readers = ("unshared", "first", "later")
    try:
        build_run(tmp / "run", n_items, outside=3)
        for mode, shots in SHARED_WORKLOADS:
            prompts = judge_prompts(tmp / "run", lm, mode, k=K, few_shot=shots, list_design="pooled")
            (opts,) = {tuple(o) for o in prompts.options}
            first, second = find_option_tokens(lm.tokenizer, opts[0]), find_option_tokens(lm.tokenizer, opts[1])
            requests = _requests(prompts)
            tokens = sum(len(lm.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts.prompt)
            root = _common_prefix([token_ids(lm, p) for p, _ in requests])  # tokens every prompt starts with

            def read(name, requests=requests, first=first, second=second):
                if name == "first":
                    scoring._ROOTS.clear()  # nothing kept from an earlier call
                return next_token_logprobs(lm, requests, select=first + second, top_k=5,
                                           shared_prefix=name != "unshared")

            passes = {name: tokens_run(lm, lambda name=name: read(name)) for name in readers}  # (and warm-up)
            times: dict = {name: [] for name in readers}
            out = {}
            for _ in range(repeats):
                for name in readers:
                    t, out[name], _ = best_of(lambda name=name: read(name), 1)
                    times[name].append(t)
            pairs = [(a, b) for name in ("first", "later")
                     for ra, rb in zip(out[name], out["unshared"]) for a, b in zip(ra, rb)]
            d_p = max(abs(_p_first(a.selected, first, second, False) - _p_first(b.selected, first, second, False))
                      for a, b in pairs)
            d_lp = max(abs(a.selected[t] - b.selected[t]) for a, b in pairs for t in first + second)
            row = dict(workload=f"{mode}, {shots}-shot", prompts=len(prompts), tokens=tokens, root=root, passes=passes,
                       t={name: min(times[name]) for name in readers}, d_p=d_p, d_lp=d_lp)
            if naive:
                row["t_naive"], _, _ = best_of(lambda: read_naive(lm, prompts, {"|".join(opts): (first, second)}), 1)
            rows.append(row)
            print(f"  {row['workload']}: {len(prompts)} prompts, {tokens} tokens, shared root {root} tokens; "
                  + "; ".join(f"{name} {_fmt(times[name])} s ({passes[name][0]} passes, {passes[name][1]} tokens run)"
                              for name in readers), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print()
    print(f"== Judge reads sharing the leading tokens: one chunk of {n_items} items, SmolLM2-135M fp32 CPU, "
          f"{torch.get_num_threads()} threads, best of {repeats} (alternating) ==")
    head = ["workload", "prompts", "tokens", "shared root", "tokens run: unshared / first / later chunk",
            "unshared s", "first chunk s", "later chunk s", "speed-up first / later",
            "max |dP(Yes)|", "max |d log p|"] + (["one prompt/forward s"] if naive else [])
    print(table(head, [[r["workload"], r["prompts"], r["tokens"], r["root"],
                        " / ".join(str(r["passes"][name][1]) for name in readers)]
                       + [f"{r['t'][name]:.2f}" for name in readers]
                       + [f"{r['t']['unshared'] / r['t']['first']:.2f}x / {r['t']['unshared'] / r['t']['later']:.2f}x",
                          f"{r['d_p']:.1e}", f"{r['d_lp']:.1e}"]
                       + ([f"{r['t_naive']:.2f}"] if naive else []) for r in rows]))
    return rows


# ------------------------------------------------------------------------------------------ main


def judge_section(n_items: int, repeats: int) -> dict:
    """The judge benchmark; returns its figures (also printed)."""
    lm = load_model(MODEL)
    tmp = Path(tempfile.mkdtemp(prefix="bench_judge_"))
    try:
        build_run(tmp / "template", n_items)
        prompts = all_prompts(lm, tmp / "template")
        options = _options(lm, prompts)
        n = len(prompts)
        ntok = [len(lm.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts.prompt]
        prefixes = {(m, p) for m, p in zip(prompts["mode"], prompts.prompt_prefix)}
        ptok = sum(len(lm.tokenizer(p, add_special_tokens=False)["input_ids"]) for _, p in prefixes)
        stok = sum(ntok) - sum(len(lm.tokenizer(p, add_special_tokens=False)["input_ids"])
                               for p in prompts.prompt_prefix)
        by_mode = prompts.groupby("mode").size().to_dict()
        print(f"model {lm!r}; {n_items} items, {n} judgments ({', '.join(f'{m} {c}' for m, c in by_mode.items())}); "
              f"prompts {min(ntok)}-{max(ntok)} tokens ({sum(ntok)} in all); {len(prefixes)} distinct prefixes "
              f"({ptok} tokens) + suffixes ({stok} tokens) = {ptok + stok} tokens fed by the judge; repeats {repeats}")
        print(f"example prompt:\n{prompts.prompt[0]}")

        read_shared(lm, prompts.iloc[:2].reset_index(drop=True), options)  # warm-up
        t_judge, table_j, tj = best_of(lambda: run_judge(lm, tmp / "template", tmp / "work"), repeats)
        t_shared, shared, tsh = best_of(lambda: read_shared(lm, prompts, options), repeats)
        t_naive, naive, tn = best_of(lambda: read_naive(lm, prompts, options), max(1, repeats - 1))
        print(f"(a) judge() end to end: best {t_judge:.2f} s of {_fmt(tj)}")
        print(f"(b) shared-prefix read:  best {t_shared:.2f} s of {_fmt(tsh)}")
        print(f"(c) one prompt/forward:  best {t_naive:.2f} s of {_fmt(tn)}")

        # orders as integers on both sides (the prompts' column is float after concatenating modes)
        naive_by_hash = dict(zip(prompts.prompt_hash + "|" + prompts.order.fillna(0).astype(int).astype(str), naive))
        keys = table_j.prompt_hash + "|" + table_j.order.fillna(0).astype(int).astype(str)
        diff_judge = max(abs(p - naive_by_hash[k]) for k, p in zip(keys, table_j.p_yes))
        diff_shared = max(abs(a - b) for a, b in zip(shared, naive))
        figures = dict(n=n, t_judge=t_judge, t_shared=t_shared, t_naive=t_naive, diff_judge=diff_judge,
                       diff_shared=diff_shared, rss=peak_rss_mb())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print()
    print(f"== Judge: {n} judgments ({n_items} items; {', '.join(MODES)}), SmolLM2-135M fp32 CPU, "
          f"{torch.get_num_threads()} threads, best of {repeats} ==")
    print(table(["method", "seconds", "judgments/s", "vs (c)"], [
        ["(a) judge() end to end", f"{t_judge:.2f}", f"{n / t_judge:.1f}", f"{t_naive / t_judge:.2f}x"],
        ["(b) shared-prefix read (next_token_logprobs)", f"{t_shared:.2f}", f"{n / t_shared:.1f}",
         f"{t_naive / t_shared:.2f}x"],
        ["(c) one prompt per forward", f"{t_naive:.2f}", f"{n / t_naive:.1f}", "1.00x"],
    ]))
    print()
    print(table(["figure", "value"], [
        ["speed-up judge() / one-prompt-per-forward", f"{t_naive / t_judge:.2f}x"],
        ["speed-up shared read / one-prompt-per-forward", f"{t_naive / t_shared:.2f}x"],
        ["max |P(Yes) judge table - one-prompt-per-forward|", f"{diff_judge:.2e}"],
        ["max |P(Yes) shared read - one-prompt-per-forward|", f"{diff_shared:.2e}"],
        ["peak RSS (MiB)", f"{figures['rss']:.0f}"],
    ]))
    return figures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="6 items instead of 16")
    parser.add_argument("--items", type=int, default=None, help="number of arithmetic items")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per measurement, best reported")
    parser.add_argument("--shared", action="store_true",
                        help="only the shared-root section (few-shot judge reads, shared vs unshared)")
    parser.add_argument("--naive", action="store_true", help="shared-root section: also one prompt per forward")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (on a shared machine 1 thread can be much faster than 2)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    n_items = args.items or (6 if args.quick else 16)
    started = time.perf_counter()
    print(f"bench_judge  {datetime.datetime.now():%Y-%m-%d %H:%M}  {machine()}")
    if not args.shared:
        judge_section(n_items, args.repeats)
    print()
    shared_section(args.items or 16, args.repeats, args.naive)
    print(f"\ntotal benchmark time {time.perf_counter() - started:.0f} s")
    return 0


def _fmt(times) -> str:
    return "[" + ", ".join(f"{t:.2f}" for t in times) + "]"


if __name__ == "__main__":
    sys.exit(main())
