"""Analysis 2: likelihood and confidence on a TruthfulQA subset (imitative falsehoods), SmolLM2."""

from _common import experiment, parse_args, shared_file

if __name__ == "__main__":
    args = parse_args(__doc__)
    experiment(
        "02_truthfulqa",
        "2. Imitative falsehoods (SmolLM2, TruthfulQA)",
        models=["smollm2-135m"],
        tasks=[(shared_file("truthfulqa", "TruthfulQA.csv"), {"n": 30, "n_distractors": 2})],
        modes=("isolated", "alternatives"),
        args=args,
        explain="""
TruthfulQA's wrong answers are written to be likely (common misconceptions): here likelihood and
truth part ways. Candidates are the model's answers, the best answer and two incorrect answers.""",
    )
