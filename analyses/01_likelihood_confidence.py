"""Analysis 1: likelihood and confidence on arithmetic (mixed difficulty) and capitals, SmolLM2, all judge modes."""

from _common import experiment, parse_args

MODES = ("isolated", "own_samples", "alternatives", "pairwise", "critique")

if __name__ == "__main__":
    args = parse_args(__doc__)
    experiment(
        "01_likelihood_confidence",
        "1. Likelihood and confidence (SmolLM2, arithmetic and capitals)",
        models=["smollm2-135m"],
        tasks=[("arithmetic", {"n": 48, "level": "mixed"}), ("capitals", {"n": 48})],
        modes=MODES,
        args=args,
        explain="""
Does the judge's P(Yes) follow the answer's log-likelihood rather than its correctness? Each
candidate (the model's own greedy and sampled answers, the reference, perturbations) is scored by
SmolLM2 and judged by SmolLM2 in every mode.""",
    )
