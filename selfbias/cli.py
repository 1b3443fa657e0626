"""The `selfbias` command line: `selfbias probe` is the main job; the rest work on a run folder.

Every command first checks all of its inputs (:mod:`selfbias._validate`: arguments, files, model
specs, device, output folder) before any model loads or any file is written, and keeps one exit
code contract (:mod:`selfbias.errors`): 0 success; 2 bad input, one line naming the place; 1 an
internal error, one line naming the file that holds the full traceback; 130 interrupted.

The numbers a command shows come from the run's one analysis (:meth:`selfbias.runs.Run.analysis`,
:mod:`selfbias.analysis`): one bootstrap setting for every command, 2000 item-bootstrap resamples
with seed 0, so `probe`/`judge`'s degenerate-judge lines, `analyze`'s health table and `figures`'
judge_health.csv are one result.
"""

from __future__ import annotations

import functools
import os
import sys
import warnings
from pathlib import Path
from typing import Optional

import click
import typer
from rich.console import Console
from rich.table import Table

from .errors import EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED, SelfbiasError

_EXIT_HELP = ("Exit codes: 0 success; 1 internal error (one line names the file holding the traceback); "
              "2 bad input (one line naming the argument, file, line or field); 130 interrupted (Ctrl-C or "
              "SIGTERM; run the same command again to resume).")

app = typer.Typer(
    help="Measure self-preference bias in language models: likelihood, self-judgment and comparison.\n\n"
         + _EXIT_HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()


def _print_version(value: bool) -> None:
    if value:
        from ._version import __version__

        console.print(f"selfbias {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                       help="Print the selfbias version and exit.")) -> None:
    """Measure self-preference bias in language models: likelihood, self-judgment and comparison."""

ALT_HELP = ("What the alternatives list may show, comma-separated: other_model, distractor, perturbation, reference, "
            "correct (default: other_model,distractor,perturbation, wrong answers only; reference or correct "
            "admits correct answers).")
PAIR_HELP = ("What the judge's own answer is paired with in pairwise mode, comma-separated: other_model, reference, "
             "distractor, perturbation (default: other_model).")
SET_HELP = "Judge template set: default (Yes/No) or ptrue (Kadavath et al. 2022: (A) True (B) False)."
RAY_HELP = ("Compute the missing chunks on a Ray cluster: auto (the running cluster: $RAY_ADDRESS or `ray start` "
            "here), local (a new cluster on this machine), HOST:PORT or ray://HOST:PORT. The run folder must be "
            "on storage every node reaches at the same path. Needs `pip install 'selfbias[ray]'`.")


def _ray_options(address: Optional[str], actors: Optional[int], gpus: Optional[float], cpus: Optional[float],
                 timeout: float = 5.0):
    """The ``ray=`` keyword of probe/judge from the --ray options (None: no Ray, nothing imported)."""
    if address is None:
        return None
    return {"address": address, "actors": actors, "num_gpus": gpus, "num_cpus": cpus, "connect_timeout": timeout}


RAY_TIMEOUT_HELP = "Seconds to wait for a --ray HOST:PORT address to accept a connection before giving up."


def _one_line(text: object) -> str:
    """One line, with rich markup characters and control characters escaped (messages quote user
    input: an escape sequence from a file must not reach the terminal)."""
    from rich.markup import escape

    line = " ".join(str(text).split())
    line = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in line)
    return escape(line)


def _fail(exc: object, code: int = EXIT_BAD_INPUT) -> None:
    console.print(f"[bold red]error:[/] {_one_line(exc)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=code)


def _write_traceback(exc: BaseException) -> str:
    """The full traceback in a file under the temporary folder; the terminal gets one line naming it."""
    import datetime
    import tempfile
    import traceback

    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = Path(tempfile.gettempdir()) / f"selfbias-error-{stamp}-{os.getpid()}.txt"
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        path.write_text(f"selfbias {' '.join(sys.argv[1:])}\n\n{text}")
    except OSError:
        return "(no file: the temporary folder is not writable)"
    return str(path)


def _internal(exc: BaseException) -> None:
    path = _write_traceback(exc)
    console.print(f"[bold red]internal error:[/] {type(exc).__name__}: {_one_line(exc)[:300]} "
                  f"(full traceback: {path}; please report it)", highlight=False, soft_wrap=True)
    raise typer.Exit(code=EXIT_INTERNAL)


def _quiet_loading() -> None:
    """transformers' per-load weight bar (under a second) would interleave with selfbias's own
    progress and error lines."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    console.print(f"[yellow]note:[/] {_one_line(message)}", highlight=False, soft_wrap=True)


def _guarded(command):
    """Run a command under the exit-code contract (module docstring): every error the package
    raises is one line and exit 2; anything unexpected is one line naming the traceback file and
    exit 1; Ctrl-C exits 130. Warnings print as one ``note:`` line."""
    @functools.wraps(command)
    def run(*args, **kwargs):
        previous = warnings.showwarning
        warnings.showwarning = _show_warning
        on_term = _sigterm_as_interrupt()
        try:
            return command(*args, **kwargs)
        except (typer.Exit, click.exceptions.ClickException, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            console.print("[bold yellow]interrupted[/]: run the same command again to resume", soft_wrap=True)
            raise typer.Exit(code=EXIT_INTERRUPTED) from None
        except SelfbiasError as exc:
            _fail(exc, exc.exit_code)
        except OSError as exc:  # a file or folder the command needs (read-only, vanished, disk full)
            where = f" {exc.filename}" if exc.filename else ""
            _fail(f"cannot use{where}: {exc.strerror or exc}")
        except Exception as exc:  # noqa: BLE001 - the contract: one line and a traceback file
            _internal(exc)
        finally:
            warnings.showwarning = previous
            on_term()

    return run


def _sigterm_as_interrupt():
    """SIGTERM (``kill``, a scheduler ending a job) ends a command as Ctrl-C does: the run's lock
    released, the "interrupted ... resume" line printed, exit 130. Returns the undo (the previous
    handler back). Only the main thread may set a handler; elsewhere nothing changes."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except (ValueError, OSError):  # pragma: no cover - no signals here
        return lambda: None
    return lambda: signal.signal(signal.SIGTERM, previous)


def _rows_table(title: str, columns, rows, floats: str = "{:.3f}") -> Table:
    """A table whose cells are never cut with an ellipsis (a model name cut to ``smollm2-1…`` cannot
    be copied): in a narrow terminal, long cells fold onto more lines instead."""
    table = Table(title=title, title_justify="left")
    for col in columns:
        table.add_column(str(col), overflow="fold")
    for row in rows:
        table.add_row(*[floats.format(v) if isinstance(v, float) else str(v) for v in row])
    return table


def _frame_table(df, title: str) -> Table:
    return _rows_table(title, df.columns, df.itertuples(index=False))


@app.command()
@_guarded
def probe(
    model: list[str] = typer.Option(["smollm2-135m"], "--model", "-m", help="Model alias, .gguf, folder or hub id; repeat for several."),
    task: str = typer.Option("arithmetic", "--task", "-t", help="arithmetic[:level], capitals, a data file, or hf:PATH[:split] (a datasets dataset on disk; see `selfbias tasks`)."),
    n: int = typer.Option(30, "--n", help="Number of items."),
    samples: int = typer.Option(4, "--samples", "-k", help="Sampled answers per item and model."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run folder (default: runs/<models>_<task>_n<N>_seed<S>)."),
    level: Optional[str] = typer.Option(None, help="Arithmetic difficulty: 1d+1d, 2d+2d, 2dx1d, 3d+3d, mixed."),
    seed: int = typer.Option(0, help="Seed for item sampling, generation and alternatives."),
    temperature: float = typer.Option(0.7, help="Sampling temperature of the sampled answers."),
    max_new_tokens: int = typer.Option(24, help="Longest generated answer, in tokens."),
    answer_marker: Optional[str] = typer.Option(None, help="Worked answers (GSM8K style): the model reasons, then "
                                                "writes the final answer after this marker, e.g. '####'. "
                                                "--max-new-tokens must hold the longest reference solution; "
                                                "answers cut by it are ungraded and counted."),
    judge_modes: str = typer.Option("isolated,alternatives", help="Judge modes to run after the probe (comma-separated; 'none' to skip)."),
    alt_sources: Optional[str] = typer.Option(None, help=ALT_HELP),
    pair_sources: Optional[str] = typer.Option(None, help=PAIR_HELP),
    template_set: str = typer.Option("default", help=SET_HELP),
    few_shot: int = typer.Option(4, "--few-shot", help="Grading examples shown to the judge, built from items of the task that are never judged (half right, half wrong; 0 = zero-shot)."),
    mapping: Optional[str] = typer.Option(None, help="Column mapping for a generic JSONL/CSV file, e.g. question=q,answer=a or nested: question=question,choices=choices.text,labels=choices.label,answer=answerKey."),
    fmt: Optional[str] = typer.Option(None, "--format", help="Force a file format: truthfulqa, truthfulqa_mc, truthfulqa_mc1, truthfulqa_mc2, gsm8k, arc, nq_open, truefalse, jsonl, csv."),
    skip_invalid: bool = typer.Option(False, help="Skip invalid rows of a data file (recorded in the run) instead of stopping."),
    device: Optional[str] = typer.Option(None, help="cuda, mps, cpu, or auto (layers spread over the GPUs) "
                                         "(default: the best available; auto with several GPUs)."),
    dtype: str = typer.Option("auto", help="auto (bfloat16 on a GPU, float32 on CPU), float32, bfloat16 or "
                              "float16 (log-softmax is always float32)."),
    template: Optional[Path] = typer.Option(None, help="JSON file with an answer template (fields of selfbias.prompts.AnswerTemplate) used for every model."),
    prompt_format: str = typer.Option("auto", help="auto, chat or plain. auto: chat only for instruction-tuned models (name has instruct/chat/-it/...) whose tokenizer has a chat template; base models get plain few-shot prompts."),
    chat_template_kwargs: Optional[str] = typer.Option(None, help="Keyword arguments for the chat template, e.g. enable_thinking=false (comma-separated key=value; true/false/numbers are typed)."),
    overwrite: bool = typer.Option(False, help="Replace an existing run folder made with other settings."),
    ray: Optional[str] = typer.Option(None, "--ray", metavar="ADDRESS", help=RAY_HELP),
    ray_actors: Optional[int] = typer.Option(None, help="Model replicas on Ray (default: one per GPU, else one per --ray-cpus CPUs)."),
    ray_gpus: Optional[float] = typer.Option(None, help="GPUs per Ray actor (default: 1 where the cluster has GPUs, else 0)."),
    ray_cpus: Optional[float] = typer.Option(None, help="CPUs per Ray actor (default 1; also its torch threads)."),
    ray_timeout: float = typer.Option(5.0, help=RAY_TIMEOUT_HELP),
    base_url: Optional[str] = typer.Option(None, "--base-url", help="Server of `-m openai:NAME` models given without @URL, e.g. http://host:8000/v1 (default $SELFBIAS_BASE_URL); API key from $SELFBIAS_API_KEY or $OPENAI_API_KEY."),
    concurrency: Optional[int] = typer.Option(None, "--concurrency", min=1, help="Served models: requests in flight at once (default $SELFBIAS_CONCURRENCY, else 8)."),
    timeout: Optional[float] = typer.Option(None, "--timeout", min=0.001, help="Served models: seconds per request before a retry (default $SELFBIAS_TIMEOUT, else 60)."),
    retries: Optional[int] = typer.Option(None, "--retries", min=0, help="Served models: further tries after a 408/429/5xx or a lost connection, with backoff 0.5, 1, 2, 4, 8 s (default 5)."),
) -> None:
    """Answer, score and judge: the model's own answers against the alternatives."""
    _use_base_url(base_url)
    server_options = _server_options(concurrency, timeout, retries)
    from . import _validate
    from .probe import probe as run_probe, probe_summary

    modes = () if judge_modes.strip().lower() in ("", "none") else tuple(m.strip() for m in judge_modes.split(","))
    _validate.check_judge_modes(modes, allow_empty=True, option="--judge-modes")
    _validate.check_generation(temperature=temperature, samples=samples, max_new_tokens=max_new_tokens, n=n,
                               prefix="--")
    templates = None
    if template is not None:
        spec = _validate.load_answer_template(template)
        templates = {m: spec for m in model}
    _quiet_loading()
    run = run_probe(model, task, n=n, samples=samples, out=out, level=level, seed=seed, temperature=temperature,
                    max_new_tokens=max_new_tokens, judge_modes=modes, mapping=mapping, fmt=fmt,
                    skip_invalid=skip_invalid, device=device, dtype=dtype, overwrite=overwrite,
                    templates=templates, alt_sources=alt_sources, pair_sources=pair_sources,
                    template_set=template_set, few_shot=few_shot, prompt_format=prompt_format,
                    chat_template_kwargs=parse_kwargs(chat_template_kwargs),
                    ray=_ray_options(ray, ray_actors, ray_gpus, ray_cpus, ray_timeout), answer_marker=answer_marker,
                    server_options=server_options)
    summary = probe_summary(run).rename(columns={
        "own_wrong_beats_reference": "own wrong > ref", "wrong_items_compared": "n wrong",
        "sample_agreement": "agreement"})
    console.print(_frame_table(summary, "probe summary (own wrong > ref: share of wrongly answered items "
                                        "where the model's answer out-scores the reference under itself)"))
    if answer_marker:
        gens = run.generations
        cut = gens["finish_reason"].eq("length") & gens["answer"].eq("") & gens["correct"].isna()
        console.print(f"worked answers: {int(cut.sum())} of {len(gens)} generations (greedy and sampled) were cut by "
                      f"--max-new-tokens {max_new_tokens} before their '{answer_marker}' line ended: ungraded, "
                      "not candidates", highlight=False)
    judged = _judge_headline(run.analysis())
    if judged is not None:
        console.print(_frame_table(judged, "judge: mean P(Yes) by correctness"))
        _say_degenerate(run.analysis())
        _say_skipped(run)
    console.print(f"run: [bold]{run.path}[/]")
    console.print(f"next: `selfbias analyze {run.path}` and `selfbias figures {run.path}`")


def _use_base_url(base_url: str | None) -> None:
    """``--base-url``: where ``openai:NAME`` specs without ``@URL`` point (read by selfbias.backends.openai)."""
    if base_url:
        from .backends.openai import check_url

        os.environ["SELFBIAS_BASE_URL"] = check_url(base_url, "--base-url")


def _server_options(concurrency: int | None, timeout: float | None, retries: int | None = None):
    """``--concurrency`` / ``--timeout`` / ``--retries`` as the settings handed to every served model's backend
    (:class:`selfbias.backends.openai.ServerOptions`, passed down explicitly; the environment is left
    alone); local models ignore them."""
    from .backends.openai import ServerOptions

    return ServerOptions(concurrency=concurrency, timeout=timeout, retries=retries)


def parse_kwargs(text: str | None) -> dict:
    """``"enable_thinking=false,n=2"`` -> ``{"enable_thinking": False, "n": 2}`` (JSON-typed values,
    else strings); a part without "=" is a ValueError naming it."""
    import json

    out: dict = {}
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        key, eq, value = (x.strip() for x in part.partition("="))
        if not eq or not key:
            from .errors import InputError

            raise InputError(f"--chat-template-kwargs: expected key=value, got {part!r}")
        try:
            out[key] = json.loads(value.lower() if value.lower() in ("true", "false", "null") else value)
        except ValueError:
            out[key] = value
    return out


def _say_degenerate(analysis) -> None:
    """A degenerate judge is named, in words, wherever its verdicts are shown (the health table of
    the run's one analysis: the reasons quote the same intervals as `selfbias analyze`)."""
    health = analysis.health
    for row in health[health["degenerate"]].itertuples():
        console.print(f"[bold yellow]degenerate judge[/] {row.judge} ({row.mode}): {row.reasons}; "
                      "its P(Yes) numbers describe noise, not judgment", highlight=False)


def _say_skipped(run) -> None:
    """How many items the matched-list rule left out of the list modes (pool shorter than --min-k)."""
    settings = run.manifest.get("judge") or {}
    n_items = len(run.items)
    designs = settings.get("list_designs") or {}
    for judge_name, skipped in (settings.get("skipped_items") or {}).items():
        design = designs.get(judge_name) or {}
        why = ("too few wrong answers to fill the lists" if design.get("design") == "cells"
               else "fewer listable answers than --min-k")
        console.print(f"lists: {len(skipped)} of {n_items} items skipped for judge {judge_name} in own_samples and "
                      f"alternatives ({why})", highlight=False)
        if design.get("design") == "cells":
            console.print(f"lists: lengths {design.get('list_lengths')}, cells {design.get('cells')}, "
                          f"{design.get('candidates_unfilled', 0)} candidates whose drawn cell could not be filled "
                          "(no own correct answer)", highlight=False)


def _judge_headline(analysis):
    frame = analysis.frame
    if frame.empty:
        return None
    frame = frame.assign(correct=frame["correct"].map({True: "correct", False: "wrong"}))
    table = frame.pivot_table(index=["judge", "mode"], columns="correct", values="p_yes", aggfunc="mean")
    return table.reset_index()


@app.command()
@_guarded
def judge(
    run: Path = typer.Argument(..., help="A run folder made by `selfbias probe`."),
    mode: list[str] = typer.Option(["isolated", "alternatives"], "--mode", help="isolated, own_samples, alternatives, pairwise, critique; repeat for several."),
    judge_model: list[str] = typer.Option([], "--judge", help="Judge model (default: the run's models); repeat for several."),
    k: int = typer.Option(3, help="Longest list of samples or alternatives (matched per item); self and control pairs per item in pairwise mode."),
    min_k: int = typer.Option(1, help="Items whose matched list would be shorter are skipped in both list modes."),
    alt_sources: Optional[str] = typer.Option(None, help=ALT_HELP),
    pair_sources: Optional[str] = typer.Option(None, help=PAIR_HELP),
    few_shot: Optional[int] = typer.Option(None, help="Few-shot grading examples (kept disjoint from the run's items; default: the examples `probe` wrote into the run, else 0; 0 = zero-shot)."),
    few_shot_file: Optional[Path] = typer.Option(None, help="JSONL file of few-shot examples: question, answer, correct; optional alternatives, critique, other (0 = --few-shot: all)."),
    templates: Optional[Path] = typer.Option(None, help="JSON file: {mode: {prefix, suffix, system?, options?}} (both formats) or {mode: {chat: {...}, plain: {...}}} overriding the judge templates."),
    template_set: str = typer.Option("default", help=SET_HELP),
    list_design: str = typer.Option("cells", help="List design of own_samples/alternatives: cells (k answers, a correct one with probability --p-correct, plausibility-matched) or pooled (the earlier rule)."),
    p_correct: float = typer.Option(0.5, help="Probability that a list holds a correct answer (cells design)."),
    seed: int = typer.Option(0),
    overwrite: bool = typer.Option(False, help="Redo a judge and mode already judged with other settings (others are kept)."),
    ray: Optional[str] = typer.Option(None, "--ray", metavar="ADDRESS", help=RAY_HELP),
    ray_actors: Optional[int] = typer.Option(None, help="Model replicas on Ray (default: one per GPU, else one per --ray-cpus CPUs)."),
    ray_gpus: Optional[float] = typer.Option(None, help="GPUs per Ray actor (default: 1 where the cluster has GPUs, else 0)."),
    ray_cpus: Optional[float] = typer.Option(None, help="CPUs per Ray actor (default 1; also its torch threads)."),
    ray_timeout: float = typer.Option(5.0, help=RAY_TIMEOUT_HELP),
    base_url: Optional[str] = typer.Option(None, "--base-url", help="Server of `-m openai:NAME` models given without @URL, e.g. http://host:8000/v1 (default $SELFBIAS_BASE_URL); API key from $SELFBIAS_API_KEY or $OPENAI_API_KEY."),
    trust_run_servers: bool = typer.Option(False, "--trust-run-servers", help="Send the API key to the servers the run folder names (else a served model the run records is contacted only when --base-url names its URL)."),
    concurrency: Optional[int] = typer.Option(None, "--concurrency", min=1, help="Served models: requests in flight at once (default $SELFBIAS_CONCURRENCY, else 8)."),
    timeout: Optional[float] = typer.Option(None, "--timeout", min=0.001, help="Served models: seconds per request before a retry (default $SELFBIAS_TIMEOUT, else 60)."),
    retries: Optional[int] = typer.Option(None, "--retries", min=0, help="Served models: further tries after a 408/429/5xx or a lost connection, with backoff 0.5, 1, 2, 4, 8 s (default 5)."),
) -> None:
    """Add judgments to a run (resumable; modes and judges add to those already there)."""
    _use_base_url(base_url)
    server_options = _server_options(concurrency, timeout, retries)
    from . import _validate
    from .judge import judge as run_judge

    _validate.check_judge_modes(tuple(mode), option="--mode")
    overrides = None
    if templates is not None:
        overrides = _validate.load_judge_templates(templates)
        _validate.check_judge_templates(overrides, tuple(mode), where=str(templates))
    _quiet_loading()
    result = run_judge(run, modes=tuple(mode), judges=judge_model or None, k=k, min_k=min_k,
                       alt_sources=alt_sources, pair_sources=pair_sources, few_shot=few_shot,
                       few_shot_file=few_shot_file, seed=seed, templates=overrides, template_set=template_set,
                       list_design=list_design, p_correct=p_correct, overwrite=overwrite,
                       ray=_ray_options(ray, ray_actors, ray_gpus, ray_cpus, ray_timeout),
                       base_url=base_url, trust_run_servers=trust_run_servers, server_options=server_options)
    headline = _judge_headline(result.analysis())
    if headline is not None:
        console.print(_frame_table(headline, "judge: mean P(Yes) by correctness"))
        _say_degenerate(result.analysis())
        _say_skipped(result)
    console.print(f"run: [bold]{result.path}[/]")


@app.command()
@_guarded
def analyze(run: Path = typer.Argument(..., help="A run folder.")) -> None:
    """The headline statistics, printed and written to RUN/analysis/."""
    from . import _validate
    from .runs import load_run

    _validate.check_run_folder(run, writable=False)
    _validate.check_writable(Path(run) / "analysis", "analysis folder")
    analysis = load_run(run).analysis()
    if analysis.frame.empty:
        _fail(f"{run} has no judgments yet: run `selfbias judge {run}` first")
    summary = analysis.summary
    summary.print_rich(console)  # compact tables (what, estimate, interval, p, n): fit 80 columns
    folder = summary.write(Path(run) / "analysis")
    n_files = len(summary.tables()) + 1  # one CSV per table and summary.md
    console.print(f"written: {folder} ({n_files} files: full tables as CSV, report as summary.md)")


@app.command()
@_guarded
def figures(
    run: Path = typer.Argument(..., help="A run folder."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for the figures (default RUN/figures)."),
    fmt: str = typer.Option("pdf,png", "--format", help="Comma-separated: pdf, png, svg."),
) -> None:
    """Draw every figure the run's tables support; say which were skipped and why."""
    from . import _validate
    from .plots import draw_all
    from .runs import load_run

    formats = _validate.check_figure_formats(fmt)
    _validate.check_run_folder(run, writable=False)
    folder = out or Path(run) / "figures"
    _validate.check_writable(folder, "figures folder")
    loaded = load_run(run)
    # Read the tables first: a damaged table is one error here, not every figure quietly skipped.
    analysis = loaded.analysis()
    report = draw_all(loaded, folder, formats=formats, analysis=analysis)
    console.print(_frame_table(report[["figure", "status", "reason"]], "figures"))


@app.command()
@_guarded
def report(
    run: Path = typer.Argument(..., help="A run folder."),
    out: Optional[Path] = typer.Option(None, "--out", help="The HTML file (default RUN/analysis/report.html)."),
    as_json: bool = typer.Option(False, "--json", help="Also print the summary as JSON (summary.json) to stdout."),
) -> None:
    """One self-contained HTML file (summary, health, thesis, figures, manifest) and summary.json."""
    from . import _validate
    from .report import write_report

    _validate.check_run_folder(run, writable=False)
    target = out or Path(run) / "analysis" / "report.html"
    _validate.check_writable(target.parent, "report folder")
    if as_json:  # stdout holds the JSON only: notes (matplotlib's warnings) would break it
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            written = write_report(run, target)
    else:
        written = write_report(run, target)
    if as_json:
        import json

        print(json.dumps(written.summary, indent=2, ensure_ascii=False))
        return
    drawn = int((written.figures["status"] == "drawn").sum())
    console.print(f"report: [bold]{written.html}[/] ({written.html.stat().st_size / 1e6:.1f} MB, {drawn} of "
                  f"{len(written.figures)} figures embedded, nothing fetched when opened)", highlight=False,
                  soft_wrap=True)
    console.print(f"summary as JSON: [bold]{written.json}[/]", highlight=False, soft_wrap=True)


@app.command()
@_guarded
def audit(
    logs: list[Path] = typer.Argument(..., help="lm-eval samples logs (samples_*.jsonl) and/or inspect_ai logs (.eval, .json)."),
    grader: str = typer.Option(..., "--grader", help="The model that graded: alias, .gguf, folder, hub id or openai:NAME@URL."),
    n: Optional[int] = typer.Option(None, "--n", min=1, help="Audit the first N questions only."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for answers.parquet and the tables (default: not written)."),
    device: Optional[str] = typer.Option(None, help="cuda, mps or cpu (default: the best available)."),
    seed: int = typer.Option(0, help="Seed of the bootstrap."),
) -> None:
    """Does the grader of an evaluation log accept wrong answers that are likelier to it, or its own?"""
    from .audit import audit as run_audit

    if out is not None:
        from . import _validate

        _validate.check_writable(out, "audit folder")
    _quiet_loading()
    result = run_audit(logs, grader, n=n, device=device, seed=seed)
    a = result.answers
    console.print(f"audited {len(a)} graded answers to {a['item_id'].nunique()} questions under {result.grader}; "
                  f"the reference calls {int(a['correct'].eq(False).sum())} wrong, "
                  f"{int(a['correct'].isna().sum())} ungradable", highlight=False, soft_wrap=True)
    shown = result.false_acceptance[["by", "group", "estimate", "ci_low", "ci_high", "n", "n_items"]]
    console.print(_frame_table(shown, "false acceptance: share of wrong answers the grader accepted"))
    auroc = result.likelihood_auroc[["subset", "mode", "estimate", "ci_low", "ci_high", "n_correct", "n_wrong"]]
    console.print(_frame_table(auroc.rename(columns={"mode": "scorer", "n_correct": "accepted", "n_wrong": "rejected"}),
                               "AUROC of the grader's likelihood for accepted vs rejected (0.5: no link)"))
    if out is not None:
        console.print(f"written: {result.write(out)}", highlight=False)


@app.command()
@_guarded
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
    except ImportError as exc:  # an optional extra (selfbias[lora]) that is not installed
        _fail(exc)
    budget, curve = result.record["budget"], result.record["loss_curve"]
    console.print(f"trained {objective}: {budget['steps']} steps, batch {budget['batch_size']}, "
                  f"{budget['trained_tokens']} trained tokens; loss {curve[0]['loss']:.3f} -> {curve[-1]['loss']:.3f}",
                  highlight=False)
    console.print(f"model: [bold]{result.path}[/] (held-out items: {len(result.record['split']['eval_ids'])})")
    console.print(f"next: `selfbias probe -m {result.path} --task {task}`")


@app.command()
@_guarded
def tasks() -> None:
    """Built-in tasks and the data-file formats the loaders read."""
    from .tasks import list_formats, list_tasks

    console.print(_rows_table("built-in tasks", ("task", "description"), list_tasks()))
    console.print(_rows_table("data-file formats (--task PATH [--format F] [--mapping ...])",
                              ("format", "description"), list_formats()))
    console.print("Hugging Face datasets: --task hf:PATH[:split], a folder written by save_to_disk or local "
                  "Parquet/Arrow/JSON(L)/CSV files, read with `datasets` (pip install 'selfbias[hf]'); "
                  "records as in a JSONL file (--format gsm8k|arc|nq_open|jsonl, --mapping).", highlight=False)


@app.command()
@_guarded
def models() -> None:
    """Bundled model aliases: installed or not, converted (cached) or not."""
    from .models import bundled_status

    yes = {True: "yes", False: "no"}
    status = bundled_status()
    rows = [(r["alias"] + (" (default)" if r["default"] else " (optional judge)" if r["optional"] else ""),
             r["description"], yes[r["installed"]], yes[r["cached"]]) for r in status]
    console.print(_rows_table("bundled models", ("alias", "description", "installed", "cached"), rows))
    # Install commands are printed whole, one line each (never cut or wrapped by the table), to be copied.
    console.print("install:", highlight=False)
    for r in status:
        console.print(f"  {r['install']}  # {r['alias']}", highlight=False, soft_wrap=True, markup=False)
    console.print("Also accepted: a .gguf file, a local Hugging Face folder, or a hub id (when online).")


if __name__ == "__main__":
    app()
