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
The same candidates judged three ways: alone, after the model's own samples, and after external
alternatives. Paired differences (cluster bootstrap over items, permutation test, Holm-corrected)
say whether seeing outside answers weakens the model's trust in its own.""",
    )
