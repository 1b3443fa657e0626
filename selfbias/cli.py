"""The `selfbias` command line: `selfbias probe` is the main job; the rest work on a run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    help="Measure self-preference bias in language models: likelihood, self-judgment and comparison.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()

KNOWN_ERRORS: tuple[type[BaseException], ...] = ()


def _known_errors() -> tuple[type[BaseException], ...]:
    from .models import ModelError
    from .runs import RunError
    from .scoring import ScoringError
    from .tasks import TaskError

    return (ModelError, RunError, ScoringError, TaskError, FileNotFoundError)


def _read_json(path: Path) -> dict:
    import json

    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable JSON file ({exc})") from None


def _fail(exc: BaseException) -> None:
    console.print(f"[bold red]error:[/] {exc}", highlight=False)
    raise typer.Exit(code=2)


def _rows_table(title: str, columns, rows, floats: str = "{:.3f}") -> Table:
    table = Table(title=title, title_justify="left")
    for col in columns:
        table.add_column(str(col))
    for row in rows:
        table.add_row(*[floats.format(v) if isinstance(v, float) else str(v) for v in row])
    return table


def _frame_table(df, title: str) -> Table:
    return _rows_table(title, df.columns, df.itertuples(index=False))


@app.command()
def probe(
    model: list[str] = typer.Option(["smollm2-135m"], "--model", "-m", help="Model alias, .gguf, folder or hub id; repeat for several."),
    task: str = typer.Option("arithmetic", "--task", "-t", help="arithmetic[:level], capitals, or a data file (see `selfbias tasks`)."),
    n: int = typer.Option(30, "--n", help="Number of items."),
    samples: int = typer.Option(4, "--samples", "-k", help="Sampled answers per item and model."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run folder (default: runs/<models>_<task>_n<N>_seed<S>)."),
    level: Optional[str] = typer.Option(None, help="Arithmetic difficulty: 1d+1d, 2d+2d, 2dx1d, 3d+3d, mixed."),
    seed: int = typer.Option(0, help="Seed for item sampling, generation and alternatives."),
    temperature: float = typer.Option(0.7, help="Sampling temperature of the sampled answers."),
    max_new_tokens: int = typer.Option(24, help="Longest generated answer, in tokens."),
    judge_modes: str = typer.Option("isolated,alternatives", help="Judge modes to run after the probe (comma-separated; 'none' to skip)."),
    mapping: Optional[str] = typer.Option(None, help="Column mapping for a generic JSONL/CSV file, e.g. question=q,answer=a."),
    fmt: Optional[str] = typer.Option(None, "--format", help="Force a file format: truthfulqa, gsm8k, arc, nq_open, truefalse, jsonl, csv."),
    skip_invalid: bool = typer.Option(False, help="Skip invalid rows of a data file (recorded in the run) instead of stopping."),
    device: Optional[str] = typer.Option(None, help="cuda, mps or cpu (default: the best available)."),
    dtype: str = typer.Option("float32", help="float32, bfloat16 or float16 (log-softmax is always float32)."),
    template: Optional[Path] = typer.Option(None, help="JSON file with an answer template (fields of selfbias.prompts.AnswerTemplate) used for every model."),
    overwrite: bool = typer.Option(False, help="Replace an existing run folder made with other settings."),
) -> None:
    """Answer, score and judge: the model's own answers against the alternatives."""
    from .probe import probe as run_probe, probe_summary

    modes = () if judge_modes.strip().lower() in ("", "none") else tuple(m.strip() for m in judge_modes.split(","))
    try:
        templates = None
        if template is not None:
            from .prompts import AnswerTemplate

            spec = _read_json(template)
            spec = {**spec, "few_shot": tuple(tuple(x) for x in spec.get("few_shot", ())),
                    "stop": tuple(spec.get("stop", ("\n",)))}
            templates = {m: AnswerTemplate(**spec) for m in model}
        run = run_probe(model, task, n=n, samples=samples, out=out, level=level, seed=seed, temperature=temperature,
                        max_new_tokens=max_new_tokens, judge_modes=modes, mapping=mapping, fmt=fmt,
                        skip_invalid=skip_invalid, device=device, dtype=dtype, overwrite=overwrite,
                        templates=templates)
    except _known_errors() + (TypeError, ValueError) as exc:
        _fail(exc)
    summary = probe_summary(run).rename(columns={
        "own_wrong_beats_reference": "own wrong > ref", "wrong_items_compared": "n wrong",
        "sample_agreement": "agreement"})
    console.print(_frame_table(summary, "probe summary (own wrong > ref: share of wrongly answered items "
                                        "where the model's answer out-scores the reference under itself)"))
    judged = _judge_headline(run)
    if judged is not None:
        console.print(_frame_table(judged, "judge: mean P(Yes) by correctness"))
        _say_degenerate(run)
    console.print(f"run: [bold]{run.path}[/]")
    console.print(f"next: `selfbias analyze {run.path}` and `selfbias figures {run.path}`")


def _say_degenerate(run) -> None:
    """A degenerate judge is named, in words, wherever its verdicts are shown."""
    from .stats import judge_health

    health = judge_health(run.analysis_frame(), n_boot=200)
    for row in health[health["degenerate"]].itertuples():
        console.print(f"[bold yellow]degenerate judge[/] {row.judge} ({row.mode}): {row.reasons}; "
                      "its P(Yes) numbers describe noise, not judgment", highlight=False)


def _judge_headline(run):
    frame = run.analysis_frame()
    if frame.empty:
        return None
    frame = frame.assign(correct=frame["correct"].map({True: "correct", False: "wrong"}))
    table = frame.pivot_table(index=["judge", "mode"], columns="correct", values="p_yes", aggfunc="mean")
    return table.reset_index()


@app.command()
def judge(
    run: Path = typer.Argument(..., help="A run folder made by `selfbias probe`."),
    mode: list[str] = typer.Option(["isolated", "alternatives"], "--mode", help="isolated, own_samples, alternatives, pairwise, critique; repeat for several."),
    judge_model: list[str] = typer.Option([], "--judge", help="Judge model (default: the run's models); repeat for several."),
    k: int = typer.Option(3, help="Samples or alternatives shown; pairs per item in pairwise mode."),
    few_shot: int = typer.Option(0, help="Few-shot grading examples (kept disjoint from the run's items)."),
    templates: Optional[Path] = typer.Option(None, help="JSON file: {mode: {prefix, suffix, system?, options?}} overriding the default judge templates."),
    seed: int = typer.Option(0),
    overwrite: bool = typer.Option(False, help="Replace existing judgments made with other settings."),
) -> None:
    """Add judgments to a run (resumable)."""
    from .judge import judge as run_judge

    try:
        overrides = _read_json(templates) if templates is not None else None
        result = run_judge(run, modes=tuple(mode), judges=judge_model or None, k=k, few_shot=few_shot, seed=seed,
                           templates=overrides, overwrite=overwrite)
    except _known_errors() + (ValueError,) as exc:
        _fail(exc)
    headline = _judge_headline(result)
    if headline is not None:
        console.print(_frame_table(headline, "judge: mean P(Yes) by correctness"))
        _say_degenerate(result)
    console.print(f"run: [bold]{result.path}[/]")


@app.command()
def analyze(run: Path = typer.Argument(..., help="A run folder.")) -> None:
    """The headline statistics, printed and written to RUN/analysis/."""
    from .runs import load_run
    from .stats import summarize

    try:
        loaded = load_run(run)
    except _known_errors() as exc:
        _fail(exc)
    frame = loaded.analysis_frame()
    if frame.empty:
        _fail(ValueError(f"{run} has no judgments yet: run `selfbias judge {run}` first"))
    summary = summarize(frame, loaded.pairwise_frame(), loaded.agreement)
    summary.print_rich(console)
    written = summary.write(Path(run) / "analysis")
    console.print(f"written: {Path(run) / 'analysis'} ({len(written) if hasattr(written, '__len__') else ''} files)")


@app.command()
def figures(
    run: Path = typer.Argument(..., help="A run folder."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for the figures (default RUN/figures)."),
    fmt: str = typer.Option("pdf,png", "--format", help="Comma-separated: pdf, png, svg."),
) -> None:
    """Draw every figure the run's tables support; say which were skipped and why."""
    from .plots import draw_all
    from .runs import load_run

    try:
        loaded = load_run(run)
    except _known_errors() as exc:
        _fail(exc)
    report = draw_all(loaded, out or Path(run) / "figures", formats=tuple(f.strip() for f in fmt.split(",")))
    console.print(_frame_table(report[["figure", "status", "reason"]], "figures"))


@app.command()
def train(
    model: str = typer.Argument(..., help="Model to fine-tune: alias, .gguf, folder or hub id."),
    objective: str = typer.Option(..., "--objective", help="imitation, critique, corrupted or imitation_trace."),
    task: str = typer.Option("arithmetic", "--task", "-t", help="arithmetic[:level], capitals, or a data file."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: a Hugging Face model folder + training_record.json."),
    errors: str = typer.Option("static", help="Critique candidates: static (perturbed, fixed) or own (the model's samples)."),
    rounds: int = typer.Option(1, help="With --errors own: regenerate the model's answers this many times."),
    lora: bool = typer.Option(False, "--lora", help="Train LoRA adapters (needs the extra selfbias[lora]) and merge them."),
    n: int = typer.Option(64, "--n", help="Number of items (split into training and held-out items)."),
    level: Optional[str] = typer.Option(None, help="Arithmetic difficulty: 1d+1d, 2d+2d, 2dx1d, 3d+3d, mixed."),
    eval_fraction: float = typer.Option(0.5, help="Share of items held out for evaluation."),
    steps: int = typer.Option(32, help="Optimizer steps (the same for every objective)."),
    tokens_per_step: int = typer.Option(64, help="Target trained (completion) tokens per step; sets the batch size."),
    learning_rate: float = typer.Option(5e-5, help="Peak learning rate (constant after warm-up)."),
    save_steps: int = typer.Option(8, help="Checkpoint interval in steps (a killed run resumes from the last one)."),
    seed: int = typer.Option(0, help="Training seed."),
    split_seed: int = typer.Option(0, help="Seed of the training/evaluation split."),
    device: Optional[str] = typer.Option(None, help="cuda, mps or cpu (default: the best available)."),
) -> None:
    """Fine-tune a model to imitate or to critique answers (resumable); `selfbias probe -m OUT` measures it."""
    from .train import train as run_train

    try:
        result = run_train(model, objective, task, out=out, n=n, level=level, eval_fraction=eval_fraction,
                           seed=seed, split_seed=split_seed, errors=errors, rounds=rounds, steps=steps,
                           tokens_per_step=tokens_per_step, learning_rate=learning_rate, save_steps=save_steps,
                           lora=lora, device=device)
    except _known_errors() + (ValueError, ImportError) as exc:
        _fail(exc)
    budget, curve = result.record["budget"], result.record["loss_curve"]
    console.print(f"trained {objective}: {budget['steps']} steps, batch {budget['batch_size']}, "
                  f"{budget['trained_tokens']} trained tokens; loss {curve[0]['loss']:.3f} -> {curve[-1]['loss']:.3f}",
                  highlight=False)
    console.print(f"model: [bold]{result.path}[/] (held-out items: {len(result.record['split']['eval_ids'])})")
    console.print(f"next: `selfbias probe -m {result.path} --task {task}`")


@app.command()
def tasks() -> None:
    """Built-in tasks and the data-file formats the loaders read."""
    from .tasks import list_formats, list_tasks

    console.print(_rows_table("built-in tasks", ("task", "description"), list_tasks()))
    console.print(_rows_table("data-file formats (--task PATH [--format F] [--mapping ...])",
                              ("format", "description"), list_formats()))


@app.command()
def models() -> None:
    """Bundled model aliases: installed or not, converted (cached) or not."""
    from .models import bundled_status

    yes = {True: "yes", False: "no"}
    rows = [(r["alias"] + (" (default)" if r["default"] else ""), r["description"], yes[r["installed"]],
             yes[r["cached"]], r["install"]) for r in bundled_status()]
    console.print(_rows_table("bundled models", ("alias", "description", "installed", "cached", "install"), rows))
    console.print("Also accepted: a .gguf file, a local Hugging Face folder, or a hub id (when online).")


if __name__ == "__main__":
    app()
