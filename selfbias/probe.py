# Over 600 lines: the probe's stages (answers, candidates, agreement, scores, few-shot, judging) share one request and run store.
"""The main job: collect a model's own answers and the alternatives, and score them all.

    task items ──► generations (each model: greedy + K samples, raw log-probs kept)
               ──► candidates (own answers, reference, distractors, perturbations; duplicates merged)
               ──► scores     (every candidate under every model, token by token)
               ──► agreement  (greedy answer vs samples, per model and item)
               ──► judgments  (selfbias.judge, default modes isolated + alternatives)

Each stage writes chunks of items atomically into the run folder (:mod:`selfbias.runs`), so an
interrupted run resumes with the same call and ends with identical tables. Generation is seeded
per (prompt, sample), and a chunk always holds the same items, so recomputed chunks are identical.

The scoring primitives are re-exported here: ``from selfbias.probe import score, generate``.
"""

from __future__ import annotations

import os
import re
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ._chunks import ChunkJob, run_chunks
from .prompts import (AnswerTemplate, default_template, extract_answer, extract_marked_answer, question_with_choices,
                      render, same_answer, worked_template)
from .runs import Run, RunStore
from .tasks import (Task, accepted_spellings, chosen_index, correct_choices, load_task, numeric_perturbations,
                    open_ended, text_perturbations)

__all__ = ["CHUNK_ITEMS", "FEW_SHOT_RULE", "OWN_ANSWER_RULES", "build_candidates", "default_run_dir",
           "few_shot_examples", "hold_out_examples", "probe", "probe_summary",
           "generate", "score", "score_requests", "score_token_ids"]

CHUNK_ITEMS = 8  # items per stored chunk: the unit of resumption
SOURCE_ORDER = ("own_greedy", "own_sample", "reference", "distractor", "perturbation")
# How each kind of row of ``generations`` got its answer (recorded in the manifest as ``own_answer_rules``).
OWN_ANSWER_RULES = {
    "greedy": "greedy decoding (temperature 0) after the answer prompt; the answer is extracted from the text "
              "(selfbias.prompts.extract_answer); on a multiple-choice item the option it names, by letter or by "
              "text (selfbias.tasks.chosen_index), replaces it",
    "sample": "as greedy, sampled at the run's temperature",
    "likeliest": "multiple-choice items only: the option whose text, after the answer prompt with the lettered "
                 "options, has the highest sum log-prob under the model (lm-evaluation-harness acc); no decoding",
    "likeliest_norm": "multiple-choice items only: the option with the highest sum log-prob divided by the "
                      "characters of ' ' + option text (lm-evaluation-harness acc_norm); no decoding",
}
LIKELIEST_KINDS = ("likeliest", "likeliest_norm")


def __getattr__(name: str):  # scoring primitives, loaded lazily (they import torch)
    if name in ("score", "score_requests", "score_token_ids"):
        from . import scoring

        return getattr(scoring, name)
    if name == "generate":
        from .generation import generate

        return generate
    raise AttributeError(name)


def default_run_dir(models: Sequence[str], task: str, n: int | None, seed: int) -> Path:
    """Deterministic from the arguments, so running the same command again resumes the run.

    One folder name under ``runs/``, file-safe: a task file by its name without extension (a path
    without one does not lead outside ``runs/``), a served model by its name without the server URL,
    ``hf:PATH[:split]`` and ``log:PATH`` by the file or folder name."""
    def safe(text: str) -> str:
        return re.sub(r"[^A-Za-z0-9_.+=-]", "_", text)

    def model_part(m: str) -> str:
        if m.startswith("openai:"):
            return "openai-" + m[len("openai:"):].partition("@")[0]
        return Path(m).stem if m.endswith(".gguf") else m.replace("/", "_")

    if task.startswith(("hf:", "log:")):  # hf:PATH[:split], log:PATH: the file or folder name, no separators
        prefix, _, rest = task.partition(":")
        stem = f"{prefix}-" + Path(rest).name.replace(":", "-")
    else:
        is_file = Path(task).suffix or os.sep in task or "/" in task
        stem = Path(task).stem if is_file else task.replace(":", "-")
    names = "+".join(model_part(m) for m in models)
    return Path("runs") / safe(f"{names}_{stem}_n{n if n is not None else 'all'}_seed{seed}")


def probe(
    models: Sequence[str] | str = ("smollm2-135m",),
    task: str | Task = "arithmetic",
    *,
    n: int | None = 30,
    level: str | None = None,
    out: str | Path | None = None,
    samples: int = 4,
    temperature: float = 0.7,
    max_new_tokens: int = 24,
    n_distractors: int = 3,
    n_perturbations: int = 6,  # k = 3 outside wrong answers besides the judged one, with room to match plausibility (issue 23)
    judge_modes: Sequence[str] = ("isolated", "alternatives"),
    alt_sources: Sequence[str] | str | None = None,
    pair_sources: Sequence[str] | str | None = None,
    template_set: str = "default",
    list_design: str = "cells",
    few_shot: int = 4,
    seed: int = 0,
    mapping: dict | str | None = None,
    fmt: str | None = None,
    skip_invalid: bool = False,
    templates: dict[str, AnswerTemplate] | None = None,
    device: str | None = None,
    dtype: str = "auto",
    loaded: dict[str, Any] | None = None,
    prompt_format: str = "auto",
    chat_template_kwargs: dict | None = None,
    overwrite: bool = False,
    progress: bool = True,
    ray: Any = None,
    answer_marker: str | None = None,
    server_options: Any = None,
) -> Run:
    """Run the probe of ``models`` on ``task`` into a run folder and return the :class:`Run`.

    Measures what self-preference bias is made of (Panickssery et al. 2024; the likelihood account of
    Wataoka et al. 2024): how likely each candidate answer, a model's own and the alternatives alike,
    is under every model, and then (``judge_modes``) how each model judges them. Every model answers
    every item (greedy + ``samples`` draws at ``temperature``); candidates are the own answers, the
    first reference, up to ``n_distractors`` dataset distractors and ``n_perturbations``
    perturbations of the reference; every model scores every candidate; then the judge runs
    ``judge_modes`` (see :func:`selfbias.judge.judge`). Every argument, the task file and the run
    folder are checked before any model loads. Resumable: the same call on the same folder
    recomputes only missing chunks.

    Parameters
    ----------
    models : str or sequence of str
        Model specs (:func:`selfbias.backends.load_backend`: a bundled alias, ``.gguf``, folder or hub
        id, or ``openai:NAME@URL`` for a served model); each answers, scores and judges, reached only
        through the backend interface.
    task : str or Task
        A task spec (:func:`selfbias.tasks.load_task`) or a Task (run whole: ``n`` does not apply).
    n : int or None
        Items of the task (None: all).
    level : str or None
        Arithmetic level.
    out : str or Path or None
        The run folder (default: ``runs/<models>_<task>_n<n>_seed<seed>``, so the same call resumes).
    samples : int
        Sampled answers per model and item, besides the greedy one.
    temperature : float
        Sampling temperature of the samples.
    max_new_tokens : int
        Longest generated answer.
    n_distractors : int
        Most dataset distractors per item taken as candidates.
    n_perturbations : int
        Perturbations of the reference per item (:func:`selfbias.tasks.numeric_perturbations`,
        :func:`selfbias.tasks.text_perturbations`).
    judge_modes : sequence of str
        Judge modes run after scoring (empty: no judging).
    alt_sources, pair_sources, template_set, list_design
        Passed to :func:`selfbias.judge.judge` (``list_design``: ``cells``, the default design of the list
        modes, or ``pooled``, the earlier rule that the committed analyses were made with).
    few_shot : int
        Grading examples shown to the judge before each judged answer (0: zero-shot), built from items
        of the same task that are never probed nor judged: items after the first ``n`` (else held out
        of the task, seeded; a Task passed in is run whole and judged zero-shot, with a warning), half
        with their reference answer (correct), half with a distractor or
        perturbation (wrong), in a seeded order (:func:`few_shot_examples`). Written to the run
        folder as ``few_shot.jsonl``, passed to the judge as its ``few_shot_file`` and recorded in the
        manifest (``few_shot``). Kadavath et al. (2022) read P(True) after few-shot examples; zero-shot,
        the bundled judges put under half their next-token mass on yes/no.
    seed : int
        Seed of the task draw, the samples and the perturbations.
    mapping, fmt, skip_invalid
        How a task file is read (:func:`selfbias.tasks.load_task`); ``skip_invalid`` also leaves out
        items too long for a model's context (recorded in the manifest).
    templates : dict of str to AnswerTemplate or None
        Answer template per model name (default :func:`selfbias.prompts.default_template`).
    device, dtype : str or None, str
        Where and in which precision the models are loaded.
    loaded : dict of str to LoadedModel or Backend, or None
        Already loaded models or backends (:class:`selfbias.backends.Backend`) by name (not loaded
        again).
    prompt_format : str
        ``auto`` | ``chat`` | ``plain`` for every model (:func:`selfbias.models.pick_prompt_format`:
        ``auto`` gives chat only to instruction-tuned models with a chat template).
    chat_template_kwargs : dict or None
        Passed to ``apply_chat_template`` (``{"enable_thinking": False}``). Both are recorded per
        model in the run manifest.
    overwrite : bool
        Replace a run made with another request (default: refused).
    progress : bool
        Show progress bars.
    ray : None, bool, str, dict or RayOptions
        Compute the missing chunks on a Ray cluster (:mod:`selfbias.distributed`): True for
        ``$RAY_ADDRESS`` or a local cluster, an address, or :class:`selfbias.distributed.RayOptions`;
        the tables are the same as without it. None (default): this process, and Ray is not imported.
    answer_marker : str or None
        Worked answers (GSM8K style, Cobbe et al. 2021): the model reasons, then writes the final
        answer after this marker (``"####"``). References holding the marker are split
        (:func:`selfbias.tasks.worked_answers`); models get :func:`selfbias.prompts.worked_template`
        unless ``templates`` says otherwise; ``max_new_tokens`` must hold the longest reference
        worked answer under each model (else InputError); a generation cut by the budget before its
        answer was complete is left ungraded (``correct`` NA, empty answer) and counted
        (:func:`probe_summary`'s ``truncated``), never graded as if complete. Candidates are still
        scored as the bare final answer after the prompt.
    server_options : ServerOptions, dict or None
        How requests reach served models (:class:`selfbias.backends.openai.ServerOptions`:
        ``concurrency``, ``timeout``, ``retries``; the CLI's ``--concurrency`` / ``--timeout``); local
        models ignore it. Recorded per model (``transport``), not part of the run request.

    Returns
    -------
    Run
        The finalized run: tables ``items``, ``generations``, ``candidates``, ``scores``,
        ``agreement`` and (with judge modes) ``judgments``.

    Raises
    ------
    InputError
        A bad argument, template, device, model spec or output folder, or items too long for a
        model's context (without ``skip_invalid``).
    TaskError
        A bad task file (file, line and field named).
    RunError
        ``out`` holds a run made with another request (and ``overwrite`` is False).
    """
    from . import _validate
    from .backends import load_backend

    models = [models] if isinstance(models, str) else list(models)
    if len(set(models)) != len(models):
        raise _validate.InputError(f"a model is listed twice: {models}")
    # Every argument, the task file and the run folder are checked before any model loads.
    judge_modes = _validate.validate_probe(
        models=models, n=n, samples=samples, temperature=temperature, max_new_tokens=max_new_tokens,
        n_distractors=n_distractors, n_perturbations=n_perturbations, judge_modes=judge_modes, seed=seed,
        device=device, dtype=dtype, templates=templates, loaded=loaded, alt_sources=alt_sources,
        pair_sources=pair_sources, template_set=template_set)
    few_shot = _validate.check_int("few_shot", few_shot, 0) if judge_modes else 0
    from .judge import LIST_DESIGNS

    if list_design not in LIST_DESIGNS:
        raise _validate.InputError(f"list_design: unknown design {list_design!r}; use one of {', '.join(LIST_DESIGNS)}")
    if answer_marker is not None and not str(answer_marker).strip():
        raise _validate.InputError("answer_marker (--answer-marker) must be non-empty text, e.g. '####'")
    if ray is not None and ray is not False:
        from .distributed import check_ray

        check_ray(ray)
    if server_options is not None:
        from .backends.openai import ServerOptions

        server_options = ServerOptions.coerce(server_options)  # an InputError before anything loads
    t0 = time.perf_counter()
    task_obj = task if isinstance(task, Task) else _load_with_spares(
        task, n, few_shot, dict(seed=seed, level=level, mapping=mapping, fmt=fmt, skip_invalid=skip_invalid))
    task_spec = task_obj.source or task_obj.name if isinstance(task, Task) else str(task)
    if answer_marker:
        from .tasks import worked_answers

        task_obj = worked_answers(task_obj, answer_marker)
    # n selects items only when probe loads the task; a Task passed in is run whole, so nothing to say.
    if n is not None and not isinstance(task, Task) and len(task_obj.items) < n:
        warnings.warn(f"{task_spec} has only {len(task_obj.items)} items: running {len(task_obj.items)}, "
                      f"not n={n}", stacklevel=2)
    requested_shots = few_shot
    if isinstance(task, Task) and few_shot:  # run whole: no item of it may become an example
        warnings.warn(f"{task_spec}: a Task passed in is run whole, so none of its items is left for few-shot "
                      "examples; the judge runs zero-shot (pass few_shot=0 to say so)", stacklevel=2)
        few_shot = 0
    task_obj, shot_items, taken = hold_out_examples(task_obj, None if isinstance(task, Task) else n, few_shot, seed)
    if taken:
        warnings.warn(f"{task_spec}: no items beyond the judged ones for {few_shot} few-shot examples; held out "
                      f"{len(taken)} of them, which are not probed ({', '.join(taken)})", stacklevel=2)
    shots = few_shot_examples(shot_items, few_shot, seed) if few_shot else []
    out = Path(out) if out is not None else default_run_dir(models, task_spec, n, seed)
    _validate.check_run_out(out)
    from ._progress import loading

    lms = {}
    for name in models:
        lms[name] = _prompted((loaded or {}).get(name), prompt_format, chat_template_kwargs)
        if lms[name] is None:
            with loading(name, progress):  # a status line: nothing else moves while weights load or a server is checked
                lms[name] = load_backend(name, device=device, dtype=dtype, prompt_format=prompt_format,
                                         chat_template_kwargs=chat_template_kwargs, server_options=server_options)
        detail = getattr(getattr(lms[name], "capabilities", None), "detail", None) or {}
        if detail.get("judge_only"):  # an API-only model: no prompt log-probs, no drawn tokens
            raise _validate.InputError(
                f"model {name!r} is reached through chat completions only: probe needs its answers' log-probs "
                f"(scores) and its own answers, which such a server does not give; it can judge a run made with "
                f"other models (selfbias judge RUN --judge {name})")
    tmpl = {name: (templates or {}).get(name) or (worked_template(lm, answer_marker) if answer_marker
                                                  else default_template(lm)) for name, lm in lms.items()}
    if templates:
        tmpl = {name: _validate.check_answer_template(t, f"template of {name}") for name, t in tmpl.items()}
    task_obj, too_long = _fit_context(task_obj, lms, tmpl, max_new_tokens, skip_invalid)
    settings = {"samples": samples, "temperature": temperature, "max_new_tokens": max_new_tokens,
                "n_distractors": n_distractors, "n_perturbations": n_perturbations, "seed": seed}
    if answer_marker:  # only when set: runs made without it keep their request (and resume)
        _check_worked_budget(task_obj, lms, answer_marker, max_new_tokens)
        settings["answer_marker"] = answer_marker
    if few_shot:  # (absent when zero-shot: runs made before few-shot judging resume unchanged)
        settings["few_shot"] = few_shot
    request = {
        "job": "probe",
        "models": [_model_request(lm) for lm in lms.values()],
        "task": {"spec": task_spec, "name": task_obj.name, "n": n, "level": level, "seed": seed,
                 "mapping": mapping, "fmt": fmt, "skip_invalid": skip_invalid,
                 "source_sha256": task_obj.source_sha256, "n_items": len(task_obj.items)},
        "templates": {name: t.to_dict() for name, t in tmpl.items()},
        "settings": settings,
        "judge_modes": list(judge_modes),
    }
    for lm in lms.values():  # a served model against the responses the run keeps, before the run is touched
        if hasattr(lm, "check_cache_dir") and not overwrite:
            lm.check_cache_dir(out / "cache" / str(lm.to_manifest().get("backend") or "server"))
    store = RunStore.open(out, request, overwrite=overwrite)
    from .backends import keep_responses

    keep_responses(lms.values(), store.path)  # a served model's responses are kept in the run (resume)
    store.update_manifest(
        models_loaded={name: lm.to_manifest() for name, lm in lms.items()},
        task_source=task_obj.source,
        skipped_rows=[{"line": r.line, "field": r.field, "reason": r.reason} for r in task_obj.skipped],
        skipped_too_long=too_long,
        few_shot={"n": len(shots), "requested": requested_shots, "file": FEW_SHOT_FILE if shots else None,
                  "item_ids": [ex["item_id"] for ex in shots], "held_out_of_first_n": taken, "seed": seed,
                  "rule": FEW_SHOT_RULE},
        own_answer_rules={kind: rule for kind, rule in OWN_ANSWER_RULES.items()
                          if kind not in LIKELIEST_KINDS or any(_multiple_choice(it) for it in task_obj.items)},
    )
    store.record_timing("load", time.perf_counter() - t0)

    items = list(task_obj.items)
    chunks = [items[i:i + CHUNK_ITEMS] for i in range(0, len(items), CHUNK_ITEMS)]
    if not store.has_chunk("items", "all", "0"):
        frame = task_obj.to_frame()  # the question as the models see it: a multiple-choice item's options follow
        frame["question"] = [question_with_choices(item) for item in task_obj.items]
        store.write_chunk("items", "all", "0", frame)

    executor = None
    if ray is not None and ray is not False:
        from .distributed import open_executor

        executor = open_executor(ray, store)  # after the run lock is held: a second driver never starts Ray
    try:
        _timed(store, "generate", lambda: _generate_all(store, lms, tmpl, task_obj, chunks, settings, progress,
                                                        executor))
        generations = store.read_table("generations")
        candidates = build_candidates(task_obj, generations, models, n_distractors=n_distractors,
                                      n_perturbations=n_perturbations, seed=seed)
        store.write_chunk("candidates", "all", "0", candidates)  # derived, deterministic: rewriting is safe
        store.write_chunk("agreement", "all", "0", sample_agreement(task_obj, generations))
        _timed(store, "score", lambda: _score_all(store, lms, tmpl, task_obj, candidates, chunks, progress,
                                                  executor))
        if not judge_modes:
            return store.finalize()
        from .judge import judge

        shot_file = None
        if shots:  # deterministic content: a rerun writes the same bytes, so the judge's record matches
            shot_file = store.path / FEW_SHOT_FILE
            _write_examples(shot_file, shots)
        # The judge reads the chunks and consolidates every table once when it finishes; it keeps
        # the executor's actors (they hold the same models).
        return judge(store.path, modes=tuple(judge_modes), models=lms, seed=seed, alt_sources=alt_sources,
                     pair_sources=pair_sources, template_set=template_set, list_design=list_design,
                     few_shot=0, few_shot_file=shot_file,
                     progress=progress, ray=executor)
    finally:
        if executor is not None and executor is not ray:
            executor.close()


# ------------------------------------------------------------------------------ few-shot examples

FEW_SHOT_FILE = "few_shot.jsonl"
FEW_SHOT_RULE = ("examples are items of the task that are never probed nor judged: the items after the first n "
                 "(the task loaded with 4 x few_shot spares), else few_shot items held out of the task by seed; "
                 "of those, few_shot drawn by seed, ceil(few_shot/2) shown with their reference answer (correct) and "
                 "the rest with a wrong answer (a dataset distractor, else a perturbation of the reference), in a "
                 "seeded order; the pairwise rival is a wrong answer of the same item; the listed answers follow the judged "
                 "lists' design: up to 3 answers, the reference among them with probability 1/2 at a seeded slot, the "
                 "rest wrong answers of the same item, the same whether the shown answer is right or wrong")


def _load_with_spares(spec, n: int | None, few_shot: int, options: dict) -> Task:
    """The task with up to ``4 * few_shot`` items beyond the first ``n`` (the first ``n`` are the same
    as without them: every loader's first k items do not depend on n); without spares when the task
    cannot give them (an arithmetic level with fewer distinct questions)."""
    from .tasks import TaskError

    if not few_shot or n is None:
        return load_task(spec, n=n, **options)
    try:
        return load_task(spec, n=n + 4 * few_shot, **options)
    except TaskError:
        return load_task(spec, n=n, **options)


def hold_out_examples(task: Task, n: int | None, few_shot: int, seed: int = 0) -> tuple[Task, list, list[str]]:
    """Split a task into the items to probe and judge and the items few-shot examples may come from.

    Parameters
    ----------
    task : Task
        The loaded task, possibly with spare items after the first ``n``.
    n : int or None
        How many items to probe (None: all).
    few_shot : int
        Examples wanted (0: none held out, the spares are dropped).
    seed : int
        Seed of the items held out when the task has no spares.

    Returns
    -------
    (Task, list of Item, list of str)
        The task of the first ``n`` items (minus any held out), the example pool (the spares, else
        ``few_shot`` items held out by seed), and the ids held out of the first ``n``.

    Raises
    ------
    InputError
        Too few items to hold ``few_shot`` out and still judge one.
    """
    import dataclasses
    import random

    from ._validate import InputError

    items = list(task.items)
    judged = items[:n] if n is not None else items
    pool = items[len(judged):]
    taken: list[str] = []
    if few_shot and len(pool) < few_shot:
        need = few_shot - len(pool)
        if len(judged) - need < 1:
            raise InputError(f"{task.name} has {len(items)} items: too few to hold {few_shot} out as few-shot "
                             f"examples and judge the rest; use a smaller few_shot (--few-shot), or 0")
        out = set(random.Random(f"few_shot_hold_out:{seed}").sample(range(len(judged)), need))
        taken = [judged[i].id for i in sorted(out)]
        pool += [judged[i] for i in sorted(out)]
        judged = [item for i, item in enumerate(judged) if i not in out]
    return dataclasses.replace(task, items=tuple(judged)), (pool if few_shot else []), taken


def few_shot_examples(pool, few_shot: int, seed: int = 0) -> list[dict]:
    """Grading examples for the judge from held-out items of the task (:data:`FEW_SHOT_RULE`).

    Half the shown answers are correct (the reference; ceil(few_shot / 2)), half wrong (the first
    distractor, else a perturbation of the reference), so the examples teach neither "yes" nor "no"
    (Kadavath et al. 2022 read P(True) after such demonstrations). Which item is shown right or wrong is
    seeded, not chosen by the answers. Multiple-choice items show their lettered options and answers
    by option text, as the judged items do.

    Parameters
    ----------
    pool : sequence of Item
        Items that are never judged (:func:`hold_out_examples`).
    few_shot : int
        Examples wanted.
    seed : int
        Seed of the draw and of which examples are correct.

    Returns
    -------
    list of dict
        Fields of :func:`selfbias._judge_templates.read_few_shot_file` (``question``, ``answer``,
        ``correct``, ``alternatives``, ``critique``, ``other``) plus the source ``item_id``; fewer than
        ``few_shot`` when the pool has too few items with a wrong answer to show.
    """
    import random

    from ._judge_templates import EXAMPLE_K
    from ._list_design import example_list
    from .judge import DEFAULT_P_CORRECT

    rng = random.Random(f"few_shot:{seed}")
    order = list(range(len(pool)))
    rng.shuffle(order)
    labels = [i % 2 == 0 for i in range(few_shot)]
    rng.shuffle(labels)
    out: list[dict] = []
    for i in order:
        if len(out) == len(labels):
            break
        item, good = pool[i], labels[len(out)]
        right, wrong = _right_and_wrong(pool, i, seed)
        if not wrong:
            continue
        shown = right if good else wrong[0]
        out.append({
            "question": question_with_choices(item), "answer": shown, "correct": good,
            # the list follows the judged lists' design (issue 23): a correct answer with probability
            # 1/2 at a seeded slot, by item not by verdict; wrong[0] is the shown wrong answer / rival
            "alternatives": list(example_list(right, wrong[1:], item.id, EXAMPLE_K, DEFAULT_P_CORRECT, seed)),
            "critique": (f"{shown} is the right answer to this question." if good
                         else f"{shown} is wrong; the answer is {right}."),
            "other": wrong[0] if good else right, "item_id": item.id,
        })
    return out


def _right_and_wrong(pool, index: int, seed: int, n_wrong: int = 4) -> tuple[str, list[str]]:
    """An item's correct answer and up to ``n_wrong`` wrong ones (options, distractors, then perturbations):
    the first is shown (or is the pairwise rival), the rest fill the example's list (k = 3)."""
    item = pool[index]
    if _multiple_choice(item):
        right_ix = correct_choices(item)
        right = item.choices[min(right_ix)] if right_ix else item.references[0]
        return right, [c for i, c in enumerate(item.choices) if i not in right_ix][:n_wrong]
    right = item.references[0]
    wrong = list(item.distractors[:n_wrong])
    if len(wrong) < n_wrong:
        if item.answer_type == "number":
            try:
                wrong += numeric_perturbations(right, n_wrong - len(wrong), wrong=wrong, seed=seed, key=item.id)
            except ValueError:  # a reference with no number
                pass
        else:
            wrong += [t for t in text_perturbations(pool, index, k=n_wrong, seed=seed) if t not in wrong][:n_wrong - len(wrong)]
    return right, wrong


def _write_examples(path: Path, shots: list[dict]) -> None:
    import json
    import os

    text = "".join(json.dumps({k: v for k, v in ex.items() if k != "item_id"}, ensure_ascii=False) + "\n"
                   for ex in shots)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _fit_context(task_obj: Task, lms, tmpl, max_new_tokens: int, skip_invalid: bool) -> tuple[Task, list[dict]]:
    """The task without the items whose answer prompt plus ``max_new_tokens`` exceeds a model's
    context (with ``skip_invalid``; they are returned for the manifest), else InputError naming the item.

    Checked before generation: a prompt longer than the context would otherwise be fed to the model
    (a 40,009-token question sat for 18 minutes at "generating answers 0/1").
    """
    from dataclasses import replace

    from ._validate import InputError, context_message, too_long

    dropped: dict[str, dict] = {}
    for name, lm in lms.items():
        try:
            prompts = {item.id: render(tmpl[name], lm, question_with_choices(item)) for item in task_obj.items}
        except (KeyError, IndexError, ValueError) as e:
            raise InputError(f"answer template of {name}: {e}") from None
        overflow = too_long(lm, prompts, max_new_tokens)
        if overflow and not skip_invalid:
            raise InputError(context_message(lm, overflow, max_new_tokens, "answer"))
        for item_id, n_tokens in overflow:
            dropped.setdefault(item_id, {"item_id": item_id, "model": name, "prompt_tokens": n_tokens,
                                         "context_length": getattr(lm, "context_length", None)})
    if not dropped:
        return task_obj, []
    kept = tuple(item for item in task_obj.items if item.id not in dropped)
    if not kept:
        raise InputError(f"every item of {task_obj.name} is too long for the context of {', '.join(lms)}")
    return replace(task_obj, items=kept), list(dropped.values())


def _check_worked_budget(task_obj: Task, lms, marker: str, max_new_tokens: int) -> None:
    """InputError unless ``max_new_tokens`` holds the longest reference worked answer (reasoning,
    marker, final answer) under every model's tokenizer: a budget shorter than the dataset's own
    solutions would cut most answers before their final line."""
    from ._validate import InputError
    from .tasks import worked_reference

    for name, lm in lms.items():
        tokenizer = getattr(lm, "tokenizer", None)
        if tokenizer is None:  # a backend without a tokenizer: nothing to count with
            continue
        lengths = {item.id: len(tokenizer(worked_reference(item, marker), add_special_tokens=False)["input_ids"])
                   for item in task_obj.items}
        longest = max(lengths, key=lengths.get)
        if lengths[longest] > max_new_tokens:
            raise InputError(f"--max-new-tokens {max_new_tokens} (max_new_tokens) is shorter than the longest "
                             f"reference worked answer ({lengths[longest]} tokens under {name}, item {longest!r}): "
                             f"answers would be cut before their final '{marker}' line; use --max-new-tokens "
                             f"{lengths[longest]} or more")


def _model_request(lm) -> dict:
    """What identifies a model in the run request (not where it was loaded from, nor the device).

    The backend kind is part of it only when it is not the default ("hf"), so runs made before
    backends existed resume unchanged."""
    m = lm.to_manifest()
    out = {k: m.get(k) for k in ("name", "source", "sha256", "revision", "dtype", "prompt_format",
                                 "chat_template_kwargs")}
    if m.get("backend", "hf") != "hf":
        out["backend"] = m["backend"]
    return out


def _prompted(lm, prompt_format: str, chat_template_kwargs: dict | None):
    """An already loaded model (LoadedModel or backend) as a backend with the asked prompt format
    ("auto" keeps the model's own choice); None stays None."""
    from .backends import HFBackend, as_backend

    if lm is None:
        return None
    backend = as_backend(lm)
    if prompt_format == "auto" and not chat_template_kwargs:
        return backend
    if not isinstance(backend, HFBackend):
        # a served model's prompting is chosen when its backend is made; it cannot be re-rendered here
        fmt = backend.prompt_format if prompt_format == "auto" else prompt_format
        if fmt != backend.prompt_format or (chat_template_kwargs and chat_template_kwargs != backend.chat_template_kwargs):
            from ._validate import InputError

            raise InputError(f"model {backend.name!r}: its backend prompts in {backend.prompt_format!r} with "
                             f"{backend.chat_template_kwargs}; set prompt_format / chat_template_kwargs when "
                             "creating the backend")
        return backend
    import dataclasses

    from .models import pick_prompt_format

    inner = backend.lm
    fmt = inner.prompt_format if prompt_format == "auto" else pick_prompt_format(
        prompt_format, inner.has_chat_template, inner.name)
    return backend.replace(lm=dataclasses.replace(
        inner, prompt_format=fmt, chat_template_kwargs=dict(chat_template_kwargs or inner.chat_template_kwargs)))


def _timed(store: RunStore, name: str, work) -> None:
    t = time.perf_counter()
    work()
    store.record_timing(name, time.perf_counter() - t)


# ------------------------------------------------------------------------------------ generation


def _generate_all(store, lms, tmpl, task: Task, chunks, settings, progress, executor=None) -> None:
    todo = [(name, k) for name in lms for k in range(len(chunks)) if not store.has_chunk("generations", name, str(k))]
    jobs = [ChunkJob(name, "generations", name, str(k), _generation_chunk,
                     (name, tmpl[name], task, chunks[k], settings), n_items=len(chunks[k])) for name, k in todo]
    run_chunks(store, lms, jobs, "generating answers", progress, executor)


def _generation_chunk(lm, name: str, template, task: Task, items, settings) -> pd.DataFrame:
    """The ``generations`` rows of one chunk of items under model ``lm`` (stored as ``name``)."""
    prompts = [render(template, lm, question_with_choices(item)) for item in items]
    common = dict(max_new_tokens=settings["max_new_tokens"], stop=template.stop, seed=settings["seed"])
    greedy = lm.generate(prompts, n=1, temperature=0.0, **common)
    sampled = (lm.generate(prompts, n=settings["samples"], temperature=settings["temperature"], **common)
               if settings["samples"] else [[] for _ in prompts])
    rows = []
    marker = settings.get("answer_marker")
    for item, g, s in zip(items, greedy, sampled):
        for kind, index, gen in [("greedy", 0, g[0]), *[("sample", j, x) for j, x in enumerate(s)]]:
            cut = False
            if marker:  # worked answer: the final answer after the marker; a cut one stays ungraded
                answer, cut = extract_marked_answer(gen.text, item.answer_type, marker, gen.finish_reason)
            else:
                answer = _as_option(extract_answer(gen.text, item.answer_type), item)
            rows.append({
                "item_id": item.id, "model": name, "kind": kind, "sample_index": index,
                "raw_text": gen.text, "answer": answer,
                # None: an open-ended answer no label decides, or a worked answer cut by the budget
                "correct": None if cut else task.grade(answer, item),
                "token_ids": list(gen.token_ids), "logprobs": list(gen.logprobs),
                "finish_reason": gen.finish_reason,
            })
    rows += _likeliest_rows(lm, name, task, items, prompts)
    frame = pd.DataFrame(rows)
    frame["correct"] = frame["correct"].astype("boolean")
    return frame


def _as_option(answer: str, item) -> str:
    """A multiple-choice answer as the text of the option it names ("B", "(b) heat" -> choice B's text), so
    an answer by letter and one by text are the same candidate; anything else as it is."""
    if item.choices and item.answer_type == "choice":
        picked = chosen_index(answer, item)
        if picked is not None:
            return item.choices[picked]
    return answer


def _likeliest_rows(lm, name: str, task: Task, items, prompts) -> list[dict]:
    """The multiple-choice items' likeliest options under ``lm`` (lm-evaluation-harness's scoring).

    Every option's text is scored after the item's answer prompt (the one the answers were generated
    from, options shown); ``likeliest`` is the argmax of the sum log-prob (lm-eval ``acc``), and
    ``likeliest_norm`` the argmax of the sum divided by the characters of " " + option (``acc_norm``).
    The first option wins a tie. ``logprobs``/``token_ids`` hold the chosen option's tokens.
    """
    chosen = [(item, prompt) for item, prompt in zip(items, prompts) if item.choices and item.answer_type == "choice"]
    if not chosen:
        return []
    results = lm.score_requests([(prompt, [" " + c for c in item.choices]) for item, prompt in chosen], truncate=True)
    rows = []
    for (item, _), scored in zip(chosen, results):
        sums = [x.sum_logprob for x in scored]
        norms = [x.sum_logprob / len(" " + c) for x, c in zip(scored, item.choices)]
        for kind, values in (("likeliest", sums), ("likeliest_norm", norms)):
            best = max(range(len(values)), key=values.__getitem__)
            answer = item.choices[best]
            rows.append({
                "item_id": item.id, "model": name, "kind": kind, "sample_index": 0,
                "raw_text": answer, "answer": answer, "correct": task.grade(answer, item),
                "token_ids": list(scored[best].token_ids), "logprobs": list(scored[best].logprobs),
                "finish_reason": "option",
            })
    return rows


# ------------------------------------------------------------------------------------ candidates


def build_candidates(
    task: Task,
    generations: pd.DataFrame,
    models: Sequence[str],
    *,
    n_distractors: int = 3,
    n_perturbations: int = 2,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per answer of each item, answers that say the same merged, with every
    (source, author) that produced it.

    Two answers are merged when the task's checker accepts each against the other
    (:meth:`Task.equivalent`: "8" and "8.0", "Chisinau" and "Chișinău"), and an answer joins the
    reference when it is equivalent to any accepted spelling of it (capitals' aliases). ``text``
    is the first spelling seen; ``spellings`` lists every distinct spelling of the class (for
    the reference: all its accepted spellings), which the scorer tries (best sum log-prob).
    ``sources[i]`` was produced by ``authors[i]`` (a model name, "dataset" or "perturbation");
    ``source`` is the first of them in the order own_greedy, own_sample, reference, distractor,
    perturbation. Empty answers (nothing extracted) are left out.

    Candidates per item: the own answers; the first reference (open-ended items: every
    reference and every distractor, each labelled by the dataset); up to ``n_distractors``
    distractors; ``n_perturbations`` perturbations (numbers: :func:`numeric_perturbations`
    around the reference and the wrong answers; text: other items' references). Multiple-choice
    items (``choices``, type ``choice``): every option, each labelled by the dataset (``n_distractors``
    does not limit them), and no perturbations (an answer that is no option is no multiple-choice
    answer); an own answer that names an option ("B") is that option's text, scored in those words only.

    ``correct`` (pandas nullable boolean): True when the class holds a reference or the checker
    accepts it; False when it holds a distractor or perturbation or the checker rejects it; NA
    when an open-ended item's answer can be graded neither way (:func:`selfbias.tasks.grade`).
    """
    by_item = {iid: g for iid, g in generations.groupby("item_id", sort=False)} if len(generations) else {}
    rows = []
    for index, item in enumerate(task.items):
        entries: list[tuple[str, str, str]] = []  # (text, source, author)
        gens = by_item.get(item.id)
        for model in models:
            if gens is None:
                continue
            mine = gens[gens["model"] == model].sort_values(["kind", "sample_index"])
            for kind, source in (("greedy", "own_greedy"), ("sample", "own_sample")):
                entries += [(_as_option(a, item), source, model) for a in mine.loc[mine["kind"] == kind, "answer"]]
        labelled = open_ended(item)
        mc = _multiple_choice(item)
        if mc:  # every option is a candidate, so the likeliest option is among them (lm-eval's scoring)
            right = correct_choices(item)
            entries += [(c, "reference" if i in right else "distractor", "dataset") for i, c in enumerate(item.choices)]
        else:
            entries += [(r, "reference", "dataset") for r in (item.references if labelled else item.references[:1])]
            entries += [(d, "distractor", "dataset")
                        for d in (item.distractors if labelled else item.distractors[:n_distractors])]
        if n_perturbations and not mc:  # an answer that is no option is not a multiple-choice answer
            if item.answer_type == "number":
                wrong = [t for t, src, _ in entries if src != "reference"]
                perturbed = numeric_perturbations(item.references[0], n_perturbations, wrong=wrong,
                                                  seed=seed, key=item.id)
            else:
                perturbed = text_perturbations(task.items, index, k=n_perturbations, seed=seed)
            entries += [(p, "perturbation", "perturbation") for p in perturbed]
        classes = _merge_equivalent(task, item, entries)
        for k, row in enumerate(classes):
            primary = min(row["sources"], key=SOURCE_ORDER.index)
            rows.append({
                "item_id": item.id, "candidate_id": f"{item.id}#{k}", "text": row["text"], "source": primary,
                "sources": row["sources"], "authors": row["authors"], "correct": _label(task, item, row),
                "spellings": row["spellings"],
            })
    frame = pd.DataFrame(rows, columns=["item_id", "candidate_id", "text", "source", "sources", "authors",
                                        "correct", "spellings"])
    frame["correct"] = frame["correct"].astype("boolean")
    return frame


def _merge_equivalent(task: Task, item, entries) -> list[dict]:
    """Group (text, source, author) entries into classes of equivalent answers, in first-seen order."""
    classes: list[dict] = []
    for text, source, author in entries:
        text = " ".join(str(text).split())
        if not text:
            continue
        # the reference enters with all its accepted spellings, so an alias joins it
        # (a multiple-choice option is scored in its own words only: a letter is no spelling of it)
        spellings = (list(accepted_spellings(item)) if source == "reference" and text == item.references[0]
                     and not _multiple_choice(item) else [text])
        spellings = [" ".join(s.split()) for s in spellings]
        if text not in spellings:
            spellings.insert(0, text)
        home = next((c for c in classes if any(
            a == b or task.equivalent(a, b, item) for a in spellings for b in c["spellings"])), None)
        if home is None:
            home = {"text": text, "sources": [], "authors": [], "spellings": []}
            classes.append(home)
        home["spellings"] += [s for s in spellings if s not in home["spellings"]]
        if (source, author) not in zip(home["sources"], home["authors"]):
            home["sources"].append(source)
            home["authors"].append(author)
    return classes


def _multiple_choice(item) -> bool:
    return bool(item.choices) and item.answer_type == "choice"


def _label(task: Task, item, row: dict) -> bool | None:
    """A class's correctness: the dataset's label first, then the checker, else ungraded (None)."""
    if "reference" in row["sources"]:
        return True
    if task.check(row["text"], item):
        return True
    if {"distractor", "perturbation"} & set(row["sources"]):
        return False
    return task.grade(row["text"], item)


def sample_agreement(task: Task, generations: pd.DataFrame) -> pd.DataFrame:
    """Per model and item: the share of samples whose answer equals the greedy answer.

    Agreement between samples and the greedy answer predicts correctness (MODELS.md measured AUROC
    0.83 / 0.87 on the bundled models), a likelihood-free baseline for the judge.
    """
    types = {item.id: item.answer_type for item in task.items}
    rows = []
    for (item_id, model), g in generations.groupby(["item_id", "model"], sort=False):
        greedy = g[g["kind"] == "greedy"].iloc[0]
        samples = g[g["kind"] == "sample"]["answer"].tolist()
        same = [same_answer(s, greedy["answer"], types[item_id]) for s in samples]
        rows.append({"item_id": item_id, "model": model, "greedy_answer": greedy["answer"],
                     "n_samples": len(samples), "agreement": sum(same) / len(same) if same else float("nan"),
                     "greedy_correct": None if pd.isna(greedy["correct"]) else bool(greedy["correct"])})
    frame = pd.DataFrame(rows, columns=["item_id", "model", "greedy_answer", "n_samples", "agreement", "greedy_correct"])
    frame["greedy_correct"] = frame["greedy_correct"].astype("boolean")
    return frame


# ---------------------------------------------------------------------------------------- scores


def _score_all(store, lms, tmpl, task: Task, candidates: pd.DataFrame, chunks, progress, executor=None) -> None:
    by_item = {iid: g for iid, g in candidates.groupby("item_id", sort=False)}
    todo = [(name, k) for name in lms for k in range(len(chunks)) if not store.has_chunk("scores", name, str(k))]
    # each job carries only its chunk's candidates (what a Ray actor is sent)
    jobs = [ChunkJob(name, "scores", name, str(k), _score_chunk,
                     (name, tmpl[name], [(item, by_item[item.id]) for item in chunks[k] if item.id in by_item]),
                     n_items=len(chunks[k]))
            for name, k in todo]
    run_chunks(store, lms, jobs, "scoring candidates", progress, executor)


def _score_chunk(lm, name: str, template, items) -> pd.DataFrame:
    """The ``scores`` rows of one chunk: every candidate of each (item, candidates) pair under ``lm``."""
    by_item = {item.id: cands for item, cands in items}
    items = [item for item, _ in items]
    # every spelling of every candidate is scored after the same prompt; each candidate keeps
    # its best spelling, so a diacritic or an alias does not decide which answer is likelier
    spellings = {item.id: [_spellings(c) for c in by_item[item.id].itertuples()] for item in items}
    requests = [(render(template, lm, question_with_choices(item)),
                 [" " + t for group in spellings[item.id] for t in group]) for item in items]
    results = lm.score_requests(requests, truncate=True)
    rows = []
    for item, scored in zip(items, results):
        scored = iter(scored)
        for cand, group in zip(by_item[item.id].itertuples(), spellings[item.id]):
            tried = [next(scored) for _ in group]
            best = max(range(len(group)), key=lambda i: tried[i].sum_logprob)  # first on ties
            s = tried[best]
            rows.append({
                "item_id": item.id, "candidate_id": cand.candidate_id, "scorer": name,
                "token_ids": list(s.token_ids), "tokens": list(s.tokens), "logprobs": list(s.logprobs),
                "is_argmax": list(s.is_argmax), "sum_logprob": s.sum_logprob,
                "mean_logprob": s.mean_logprob, "n_tokens": s.n_tokens,
                "truncated_tokens": s.truncated_tokens, "join_overlap": s.join_overlap,
                "scored_text": group[best], "n_spellings": len(group),
            })
    frame = pd.DataFrame(rows)
    if len(frame):
        frame.insert(10, "rank", frame.groupby("item_id")["sum_logprob"]
                     .rank(ascending=False, method="min").astype("int64"))
    return frame


def _spellings(cand) -> list[str]:
    """The spellings a candidate is scored in: its text first, then the others merged into it."""
    extra = getattr(cand, "spellings", None)
    extra = [] if extra is None else [str(t) for t in extra]
    return [cand.text, *[t for t in extra if t != cand.text]]


# --------------------------------------------------------------------------------------- summary


def probe_summary(run: Run) -> pd.DataFrame:
    """The headline of a probe, per model.

    Parameters
    ----------
    run : Run
        A probed run.

    Returns
    -------
    pandas.DataFrame
        One row per model: ``items``, ``accuracy`` (greedy, of the graded answers), ``ungraded``
        (open-ended answers no label decides), ``own_wrong_beats_reference`` (share of the items it
        answered wrong where its own wrong answer out-scores the reference under the model itself:
        the likelihood signal behind self-preference), ``wrong_items_compared`` and
        ``sample_agreement`` (mean share of samples equal to the greedy answer); in a run with an
        answer marker also ``truncated``: greedy answers cut by ``max_new_tokens`` before their
        final answer was complete (ungraded, counted in ``ungraded`` too, not as wrong); multiple-choice
        runs add ``accuracy_likeliest`` and ``accuracy_likeliest_norm`` (the likeliest option's accuracy,
        lm-evaluation-harness ``acc`` and ``acc_norm``).
    """
    gens, cands, scores, agree = run.generations, run.candidates, run.scores, run.agreement
    marked = bool(((run.manifest.get("request") or {}).get("settings") or {}).get("answer_marker"))
    rows = []
    for model in gens["model"].unique():
        greedy = gens[(gens["model"] == model) & (gens["kind"] == "greedy")]
        own = scores[scores["scorer"] == model].merge(cands, on=["item_id", "candidate_id"])
        wrong_items = set(greedy.loc[greedy["correct"].eq(False).fillna(False).astype(bool), "item_id"])
        wins = []
        for item_id, g in own[own["item_id"].isin(wrong_items)].groupby("item_id"):
            mine = g[[("own_greedy", model) in zip(s, a) for s, a in zip(g["sources"], g["authors"])]]
            ref = g[["reference" in s for s in g["sources"]]]
            if len(mine) and len(ref) and mine.iloc[0]["candidate_id"] != ref.iloc[0]["candidate_id"]:
                wins.append(mine.iloc[0]["sum_logprob"] > ref.iloc[0]["sum_logprob"])
        a = agree[agree["model"] == model]
        likeliest = {}
        for kind in LIKELIEST_KINDS:  # multiple-choice runs: accuracy of the likeliest option (lm-eval acc / acc_norm)
            picked = gens[(gens["model"] == model) & (gens["kind"] == kind)]["correct"].dropna()
            if len(picked):
                likeliest[f"accuracy_{kind}"] = float(picked.astype(bool).mean())
        rows.append({
            "model": model, "items": len(greedy),
            "accuracy": float(greedy["correct"].dropna().astype(bool).mean()) if greedy["correct"].notna().any()
            else float("nan"),  # of the graded greedy answers
            "ungraded": int(greedy["correct"].isna().sum()),
            "own_wrong_beats_reference": (sum(wins) / len(wins)) if wins else float("nan"),
            "wrong_items_compared": len(wins), "sample_agreement": a["agreement"].mean(), **likeliest,
        })
        if marked:
            rows[-1]["truncated"] = int((greedy["finish_reason"].eq("length") & greedy["correct"].isna()
                                         & greedy["answer"].eq("")).sum())
    return pd.DataFrame(rows)
