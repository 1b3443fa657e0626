"""Analysis 2: likelihood and confidence on a TruthfulQA subset (imitative falsehoods), SmolLM2."""

from _common import experiment, parse_args, shared_file

if __name__ == "__main__":
    args = parse_args(__doc__)
    experiment(
        "02_truthfulqa",
        "2. Imitative falsehoods (SmolLM2, TruthfulQA)",
        models=["smollm2-135m"],
        tasks=[(shared_file("truthfulqa", "mc_task.json"), {"n": 30})],
        modes=("isolated", "alternatives"),
        args=args,
        explain="""
TruthfulQA's wrong answers are written to be likely (common misconceptions): here likelihood and
truth part ways. Candidates are the labelled multiple-choice targets (mc1/mc2 of `mc_task.json`:
true answers and incorrect answers, with their labels) and the model's own answers; an own answer
that matches no labelled target is *ungraded* and left out of every correctness statistic. The
alternatives mode is asked for but skipped on every item: lists show only answers known to be
wrong, the model's own sampled answers are ungraded free text, so its own list is empty, and the
matched-list rule (one length per item in both list modes) then leaves both list modes out. The
list contrast is measured on arithmetic (analyses 1 and 4).""",
    )
