"""Benchmark: judge-like next-token reads against an OpenAI-compatible server, concurrent vs one at a time.

Prints figures; asserts nothing about time. Run with ``make bench-server`` or
``.venv/bin/python benchmarks/bench_server.py [--quick] [--prompts N] [--concurrency N] [--url URL --model NAME]``.

Without ``--url`` the script starts a vLLM server (``selfbias.backends._local_server``: the repo's
``.venv-vllm`` or ``$SELFBIAS_VLLM_PYTHON``) serving the bundled SmolLM2-135M (float32, CPU, eager) on
127.0.0.1 and stops it at the end.

Workload: ``capitals_task(n=N, seed=0)`` (N = 24, 6 with ``--quick``): per item the judge's isolated
P(Yes) prompt for the reference answer, in SmolLM2's chat format, read as the judge reads it
(``next_token_logprobs(prompts, select=<Yes/No ids>, top_k=10)``: one 1-token completion with
``logprobs=10`` per prompt). The same prompts are read twice, by two backends with no response cache:
``concurrency=1`` (one request at a time) and ``concurrency=C`` (default 8 requests in flight). Figures:
requests/s of each and their ratio, and the largest |log-prob| difference between the two reads (the
server batches concurrent requests; answers must not depend on it).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, table  # noqa: E402


def judge_prompts(tokenizer, n: int) -> list[tuple[str, list[str]]]:
    from selfbias.tasks import capitals_task

    out = []
    for item in capitals_task(n=n, seed=0).items:
        messages = [{"role": "user", "content": f"Question: {item.question}\nProposed answer: {item.references[0]}\n"
                                                "Is the proposed answer correct? Answer Yes or No."}]
        prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        out.append((prompt, [""]))
    return out


def read_all(url: str, model: str, prompts, concurrency: int, select: list[int]):
    from selfbias.backends.openai import OpenAIBackend

    with OpenAIBackend(url, model, concurrency=concurrency) as backend:
        start = time.perf_counter()
        reads = backend.next_token_logprobs(prompts, select=select, top_k=10)
        return time.perf_counter() - start, reads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="6 prompts instead of 24")
    parser.add_argument("--prompts", type=int, default=None)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--url", default=None, help="an already running server (default: start one)")
    parser.add_argument("--model", default="smollm2", help="its served model name")
    args = parser.parse_args()
    n = args.prompts or (6 if args.quick else 24)

    from selfbias.backends._local_server import LocalVLLMServer, bundled_folder

    server = None
    url = args.url
    if url is None:
        print("starting a vLLM server (about 1.5 min)...", flush=True)
        server = LocalVLLMServer(bundled_folder(), args.model).start()
        url = server.url
    try:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(bundled_folder()))
        prompts = judge_prompts(tokenizer, n)
        select = [tokenizer(s, add_special_tokens=False)["input_ids"][0] for s in ("Yes", "No", " Yes", " No")]
        read_all(url, args.model, prompts[:2], 1, select)  # warm-up (prefix cache, first-request costs)
        serial_s, serial = read_all(url, args.model, prompts, 1, select)
        conc_s, conc = read_all(url, args.model, prompts, args.concurrency, select)
    finally:
        if server is not None:
            server.stop()
    diff = max(abs(a.selected[i] - b.selected[i]) for (a,), (b,) in zip(serial, conc) for i in select)
    print(machine())
    print(f"{n} judge prompts (capitals, isolated, chat), next-token reads with logprobs=10 against {url}")
    print(table(["reads", "seconds", "requests/s"], [
        ["one at a time", f"{serial_s:.2f}", f"{n / serial_s:.2f}"],
        [f"concurrency {args.concurrency}", f"{conc_s:.2f}", f"{n / conc_s:.2f}"],
    ]))
    print(f"speed-up of concurrency {args.concurrency}: {serial_s / conc_s:.2f}x; "
          f"max |log-prob| difference between the two reads: {diff:.2e}")


if __name__ == "__main__":
    main()
