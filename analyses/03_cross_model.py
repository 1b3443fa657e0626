"""Analysis 3: SmolLM2 and Gemma answering and judging each other (judge x author matrix)."""

from _common import experiment, parse_args

if __name__ == "__main__":
    args = parse_args(__doc__)
    experiment(
        "03_cross_model",
        "3. Cross-model: who trusts whose answers (SmolLM2 x Gemma, capitals)",
        models=["smollm2-135m", "gemma3-270m"],
        tasks=[("capitals", {"n": 24, "samples": 2})],
        modes=("isolated", "pairwise"),
        args=args,
        explain="""
Both models answer every question and both judge every answer: the judge x author matrix shows
whether a judge accepts its own wrong answers more readily than the other model's.""",
    )
