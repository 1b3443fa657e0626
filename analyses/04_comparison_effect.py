"""Analysis 4: the comparison effect, isolated vs own samples vs external alternatives (SmolLM2, arithmetic)."""

from _common import experiment, parse_args

if __name__ == "__main__":
    args = parse_args(__doc__)
    experiment(
        "04_comparison_effect",
        "4. The comparison effect (SmolLM2, arithmetic)",
        models=["smollm2-135m"],
        tasks=[("arithmetic", {"n": 48, "level": "mixed"})],
        modes=("isolated", "own_samples", "alternatives"),
        args=args,
        explain="""
The same candidates judged three ways: alone, after a list of the model's own sampled answers, and
after a list of outside answers (perturbations and distractors). Both lists hold wrong answers only
(no gold is ever shown), have the same length for every candidate of an item, never contain the
judged answer, and are shuffled with a seed. The thesis contrast is outside list vs own list on the
judge's own wrong answers (paired within candidate, items as clusters, item sign-flip tests).""",
    )
