"""Fine-tune a model to imitate answers or to critique them, and record exactly what it saw.

The question (issue 11): does training a model to say what is wrong with an answer teach it more
than training it to copy correct answers? Critique Fine-Tuning (Wang et al. 2025, "Critique
Fine-Tuning: Learning to Critique is More Effective than Learning to Imitate") reports +4 to +10
points over imitation on math; SCoRe (Kumar et al. 2024, "Training Language Models to Self-Correct
via Reinforcement Learning") finds offline correction traces fail unless the errors are the
model's own; Stechly et al. / Li et al. (2025) find corrupted reasoning traces train about as well
as correct ones. :func:`train` makes one arm of that experiment; ``analyses/05_critique_vs_imitation.py``
measures the arms with ``selfbias probe`` + judge.

Objectives (the example rules are in :mod:`selfbias._training_data`): ``imitation``,
``critique``, ``corrupted``, ``imitation_trace``; critique candidates come from ``errors="static"``
(perturbed answers fixed before training) or ``errors="own"`` (the model's own samples, regenerated
from the current weights at the start of each of ``rounds`` rounds).

Budget. Every objective runs the same number of optimizer ``steps`` over the same training
questions, and is given the same number of trained (completion) tokens per step: the batch size of
an objective is ``round(tokens_per_step / mean completion length)`` (at least 1), so short
imitation answers get more examples per step than long critiques. The record reports both the
steps and the exact trained tokens (and the tokens read, prompts included); they match the target
to within the rounding of the batch size.

The trainer is transformers' ``Trainer`` (TRL is not a dependency) with the loss on the completion
only (labels -100 on the prompt and padding), examples fed in a recorded order (sequential sampler
over a seeded stream), a constant learning rate after warm-up, checkpoints every ``save_steps``.
A killed run resumes from its last complete checkpoint when called again with the same arguments
and ends with the same weights and record. ``lora=True`` trains PEFT LoRA adapters (optional
extra ``selfbias[lora]``) and merges them into the saved weights.

The output folder is a Hugging Face model folder (``selfbias probe -m DIR`` loads it) holding
``training_record.json`` and ``training_data.jsonl`` (every example, in order).
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ._training_data import ERRORS, OBJECTIVES, TRACE_OBJECTIVES, Example, example_stream, split_items
from .errors import InputError

__all__ = ["train", "TrainResult", "OBJECTIVES", "ERRORS", "RECORD_FILE", "heldout_task", "read_record"]

RECORD_FILE = "training_record.json"
DATA_FILE = "training_data.jsonl"
RECORD_VERSION = 1
OWN_TEMPERATURE = 0.7
OWN_MAX_NEW_TOKENS = 12  # an arithmetic or short answer after the prefill; longer text is rambling


@dataclass(frozen=True)
class TrainResult:
    """Where the trained model is and what its training record says."""

    path: Path
    record: dict


def _lora_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("peft") is not None


def read_record(path: str | os.PathLike) -> dict:
    """The training record of a trained model folder.

    Parameters
    ----------
    path : str or PathLike
        The folder :func:`train` wrote.

    Returns
    -------
    dict
        The contents of ``training_record.json`` (see :func:`train`).

    Raises
    ------
    ValueError
        The record is missing or not JSON.
    """
    file = Path(path) / RECORD_FILE
    try:
        return json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{file}: not a readable training record ({exc})") from None


def heldout_task(path: str | os.PathLike):
    """The evaluation (held-out) items of a trained model as a :class:`~selfbias.tasks.Task`.

    The items the model never trained on, for probing it after training (analysis 5).

    Parameters
    ----------
    path : str or PathLike
        The folder :func:`train` wrote.

    Returns
    -------
    Task
        The task of the record, reloaded with its settings, restricted to ``split.eval_ids``.

    Raises
    ------
    ValueError
        The record is missing or not JSON.
    """
    from .tasks import Task, load_task

    rec = read_record(path)
    t = rec["task"]
    task = load_task(t["spec"], n=t["n"], seed=t["seed"], level=t["level"])
    ids = set(rec["split"]["eval_ids"])
    items = tuple(it for it in task.items if it.id in ids)
    return Task(name=task.name, items=items, checker=task.checker,
                source=f"{task.source}|heldout:split_seed={rec['split']['seed']}")


def _versions() -> dict[str, str]:
    import accelerate
    import torch
    import transformers

    from ._version import __version__

    return {"selfbias": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "accelerate": accelerate.__version__, "python": platform.python_version()}


def _check(objective: str, errors: str, rounds: int, steps: int, tokens_per_step: int, lora: bool) -> None:
    from ._validate import check_int

    if objective not in OBJECTIVES:
        raise InputError(f"unknown objective {objective!r}; use one of {', '.join(OBJECTIVES)}")
    if errors not in ERRORS:
        raise InputError(f"unknown errors source {errors!r}; use static or own")
    check_int("steps", steps, 1)
    check_int("rounds", rounds, 1)
    if objective != "critique" and (errors != "static" or rounds != 1):
        raise InputError(f"--errors and --rounds apply to the critique objective only, not {objective!r}")
    if errors == "static" and rounds != 1:
        raise InputError("--rounds applies to --errors own (static candidates are fixed before training)")
    if rounds < 1 or steps < rounds:
        raise InputError(f"need 1 <= rounds <= steps, got rounds={rounds}, steps={steps}")
    if isinstance(tokens_per_step, bool) or not isinstance(tokens_per_step, int) or tokens_per_step < 1:
        raise InputError(f"tokens_per_step must be positive, got {tokens_per_step}")
    if lora and not _lora_available():
        raise ImportError("--lora needs the optional dependency peft: pip install 'selfbias[lora]'")


def _check_numbers(*, learning_rate: Any, eval_fraction: Any, n: Any, save_steps: Any, warmup_steps: Any,
                   lora_rank: Any, seed: Any, split_seed: Any) -> None:
    """The training numbers: a finite positive learning rate, a held-out share in (0, 1), counts."""
    from ._validate import check_int

    if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float)) or \
            not math.isfinite(learning_rate) or learning_rate <= 0:
        raise InputError(f"learning_rate must be a finite number > 0, got {learning_rate!r}")
    if isinstance(eval_fraction, bool) or not isinstance(eval_fraction, (int, float)) or \
            not 0 < eval_fraction < 1:
        raise InputError(f"eval_fraction must be a number in (0, 1), got {eval_fraction!r}")
    if n is not None:
        check_int("n", n, 2)
    check_int("save_steps", save_steps, 1)
    check_int("warmup_steps", warmup_steps, 0)
    check_int("lora_rank", lora_rank, 1)
    check_int("seed", seed, 0)
    check_int("split_seed", split_seed, 0)


def _check_out(out: Path) -> None:
    """``out`` is nothing yet, an empty folder, or this module's own output (finished or resumable):
    a folder holding anything else is refused, never written into."""
    from ._validate import check_writable

    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a folder")
    if out.is_dir() and not (out / RECORD_FILE).exists() and not (out / "checkpoints" / "request.json").exists():
        # (an empty checkpoints folder: a run killed before it wrote its request)
        others = [e.name for e in os.scandir(out) if not e.name.startswith(".")
                  and not (e.name == "checkpoints" and e.is_dir() and not any(os.scandir(e.path)))]
        if others:
            raise InputError(f"--out {out}: folder is not empty and is not a selfbias training output (no "
                             f"{RECORD_FILE}); refusing to write into it, choose another folder")
    check_writable(out, "--out")


class _Encoded:
    """A list of tokenised examples (what Trainer's DataLoader indexes)."""

    def __init__(self, rows: list[dict]):
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        return self.rows[i]


def _encode(lm, examples: Sequence[Example]) -> list[dict]:
    """input_ids = prompt ids (as the generator feeds them) + completion ids + EOS; labels -100 on the prompt."""
    from ._batching import token_ids

    eos = lm.tokenizer.eos_token_id
    rows, cache = [], {}
    for ex in examples:
        if ex.prompt not in cache:
            cache[ex.prompt] = token_ids(lm, ex.prompt)
        prompt = cache[ex.prompt]
        completion = list(lm.tokenizer(ex.completion, add_special_tokens=False)["input_ids"])
        if eos is not None:
            completion.append(eos)
        rows.append({"input_ids": prompt + completion, "labels": [-100] * len(prompt) + completion,
                     "attention_mask": [1] * (len(prompt) + len(completion))})
    return rows


def _collate(pad_id: int):
    import torch

    def collate(batch: list[dict]) -> dict:
        width = max(len(r["input_ids"]) for r in batch)
        out = {"input_ids": [], "labels": [], "attention_mask": []}
        for r in batch:
            pad = width - len(r["input_ids"])  # right padding: masked, and -100 in the labels
            out["input_ids"].append(r["input_ids"] + [pad_id] * pad)
            out["labels"].append(r["labels"] + [-100] * pad)
            out["attention_mask"].append(r["attention_mask"] + [0] * pad)
        return {k: torch.tensor(v) for k, v in out.items()}

    return collate


def _last_checkpoint(folder: Path) -> Path | None:
    """The newest checkpoint whose files are all written (a kill can leave a partial one)."""
    done = []
    for ckpt in folder.glob("checkpoint-*"):
        needed = ("trainer_state.json", "optimizer.pt", "scheduler.pt")
        if all((ckpt / f).exists() for f in needed) and any(ckpt.glob("*.safetensors")) or \
                all((ckpt / f).exists() for f in needed) and any(ckpt.glob("adapter_model*")):
            done.append((int(ckpt.name.split("-")[-1]), ckpt))
    return max(done)[1] if done else None


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=True))
    os.replace(tmp, path)


def _own_candidates(lm, template, items, n_draws: int, seed: int, rnd: int, task) -> dict[str, list]:
    """Each item's ``n_draws`` own sampled answers (current weights) with the checker's verdict."""
    from .generation import generate
    from .prompts import extract_answer, render

    was_training = lm.model.training
    lm.model.eval()
    prompts = [render(template, lm, it.question) for it in items]
    gens = generate(lm, prompts, n=n_draws, temperature=OWN_TEMPERATURE, max_new_tokens=OWN_MAX_NEW_TOKENS,
                    stop=template.stop, seed=seed * 1000 + rnd)
    out = {}
    for it, draws in zip(items, gens):
        answers = [extract_answer(g.text, it.answer_type) or g.text.strip() or "(no answer)" for g in draws]
        out[it.id] = [(a, task.check(a, it)) for a in answers]
    if was_training:
        lm.model.train()
    return out


def _no_final_checkpoint():
    from transformers import TrainerCallback

    class NoFinalCheckpoint(TrainerCallback):
        """Trainer always checkpoints the last step; the weights are saved right after anyway, and a
        checkpoint of SmolLM2 (weights + Adam state) is 1.6 GB, so only the periodic ones are kept."""

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step >= state.max_steps and state.global_step % args.save_steps != 0:
                control.should_save = False
            return control

    return NoFinalCheckpoint()


def _prompt_makers(lm):
    from ._judge_templates import render as judge_render
    from .judge import DEFAULT_TEMPLATES
    from .prompts import default_template, render

    template = default_template(lm)
    judge_template = DEFAULT_TEMPLATES["isolated"]["chat" if lm.has_chat_template else "plain"]
    answer_prompt = lambda q: render(template, lm, q)  # noqa: E731
    judge_prompt = lambda q, a: judge_render(judge_template, {"question": q, "answer": a}, lm.tokenizer)  # noqa: E731
    return template, answer_prompt, judge_prompt


def train(
    model: Any = "smollm2-135m",
    objective: str = "imitation",
    task: str = "arithmetic",
    *,
    out: str | os.PathLike,
    n: int | None = 64,
    level: str | None = None,
    task_seed: int = 0,
    eval_fraction: float = 0.5,
    split_seed: int = 0,
    seed: int = 0,
    errors: str = "static",
    rounds: int = 1,
    steps: int = 32,
    tokens_per_step: int = 64,
    learning_rate: float = 5e-5,
    warmup_steps: int = 0,
    save_steps: int = 8,
    lora: bool = False,
    lora_rank: int = 8,
    device: str | None = None,
    progress: bool = True,
    keep_checkpoints: bool = False,
    callbacks: Sequence[Any] = (),
) -> TrainResult:
    """Fine-tune ``model`` with one objective on the training split of ``task``; write an HF folder to ``out``.

    One arm of the critique-vs-imitation experiment (module doc: Wang et al. 2025, Critique Fine-Tuning;
    Kumar et al. 2024, SCoRe), with equal optimizer steps and trained tokens per objective.

    Parameters
    ----------
    model : str or LoadedModel
        A model spec (:func:`selfbias.models.load_model`) or a loaded model (copied, never changed).
    objective : str
        ``imitation`` | ``critique`` | ``corrupted`` | ``imitation_trace`` (module doc).
    out : str or PathLike
        The output folder (a Hugging Face model folder with the training record); an unfinished
        run there with the same settings is resumed.
    task, n, level, task_seed : str, int or None, str or None, int
        The question set, as ``load_task(task, n=n, seed=task_seed, level=level)``.
    eval_fraction, split_seed : float, int
        The seeded share of items held out for evaluation (never trained on).
    seed : int
        Training seed (model init of LoRA, candidate draws, example order, Trainer seed).
    errors, rounds : str, int
        Critique candidates: ``static`` or the model's ``own`` samples regenerated in each of
        ``rounds`` rounds (the steps are split evenly across rounds).
    steps, tokens_per_step : int
        The budget: optimizer steps and target trained (completion) tokens per step.
    learning_rate, warmup_steps : float, int
        Constant learning rate after a linear warm-up of ``warmup_steps``.
    save_steps : int
        Checkpoint interval (the unit of resumption).
    lora, lora_rank : bool, int
        Train LoRA adapters of this rank (optional extra ``selfbias[lora]``), merged into the saved weights.
    device : str or None
        Where ``model`` is loaded when given as a spec (default: cuda, mps or cpu).
    progress : bool
        Show the trainer's progress bar.
    keep_checkpoints : bool
        Keep the checkpoints in ``out`` after training (default: deleted once the model is saved).
    callbacks : sequence of transformers.TrainerCallback
        Extra callbacks (tests use one to kill the process).

    Returns
    -------
    TrainResult
        ``path`` (the HF folder) and ``record`` (also ``path/training_record.json``): objective,
        model, task, split (train/eval item ids), budget (steps, batch size, trained tokens),
        seeds, per-round candidate statistics, loss curve, package versions.

    Raises
    ------
    ValueError
        An unknown objective or errors source, settings that do not go together, an objective that
        needs worked steps on a non-arithmetic task, or an ``out`` folder trained with other settings.
    ImportError
        ``lora=True`` without ``peft`` installed.
    """
    from transformers import Trainer, TrainingArguments, set_seed

    from .models import LoadedModel, load_model, wrap_model
    from .tasks import load_task

    _check(objective, errors, rounds, steps, tokens_per_step, lora)
    _check_numbers(learning_rate=learning_rate, eval_fraction=eval_fraction, n=n, save_steps=save_steps,
                   warmup_steps=warmup_steps, lora_rank=lora_rank, seed=seed, split_seed=split_seed)
    out = Path(out)
    _check_out(out)
    task_obj = load_task(task, n=n, seed=task_seed, level=level)
    if objective in TRACE_OBJECTIVES:
        bad = [it.id for it in task_obj.items if not {"a", "b", "op"} <= set(it.meta)]
        if bad:
            raise InputError(f"objective {objective!r} needs worked steps, which only arithmetic items have "
                             f"(item {bad[0]!r} of {task_obj.name} is not arithmetic)")
    train_items, eval_items = split_items(task_obj.items, eval_fraction, split_seed)
    request = {"objective": objective, "errors": errors if objective == "critique" else None, "rounds": rounds,
               "task": {"spec": str(task), "name": task_obj.name, "n": n, "level": level, "seed": task_seed},
               "steps": steps, "tokens_per_step": tokens_per_step, "learning_rate": learning_rate,
               "warmup_steps": warmup_steps, "seed": seed, "split_seed": split_seed,
               "eval_fraction": eval_fraction, "lora": lora, "lora_rank": lora_rank if lora else None}
    if isinstance(model, LoadedModel):
        import copy

        lm = wrap_model(copy.deepcopy(model.model).float(), model.tokenizer, name=model.name,
                        identity=model.identity)
    else:
        lm = load_model(str(model), device=device, dtype="float32")
    request["model"] = lm.identity.to_dict()
    if (out / RECORD_FILE).exists():
        done = read_record(out)
        if {k: done.get(k) for k in request} == request:
            return TrainResult(out, done)  # finished earlier with the same settings
        raise InputError(f"{out} holds a model trained with other settings; choose another --out or delete it")
    out.mkdir(parents=True, exist_ok=True)
    (out / "checkpoints").mkdir(exist_ok=True)
    request_file = out / "checkpoints" / "request.json"
    if request_file.exists() and json.loads(request_file.read_text()) != request:
        raise InputError(f"{out} holds a training run with other settings; choose another --out or delete it")
    _write_json(request_file, request)

    template, answer_prompt, judge_prompt = _prompt_makers(lm)
    base_model = lm.model
    if lora:
        from peft import LoraConfig, get_peft_model

        set_seed(seed)
        base_model = get_peft_model(lm.model, LoraConfig(r=lora_rank, lora_alpha=2 * lora_rank,
                                                         target_modules="all-linear", task_type="CAUSAL_LM"))
    lm = wrap_model(base_model, lm.tokenizer, name=lm.name, identity=lm.identity)

    steps_per_round = [steps // rounds + (1 if r < steps % rounds else 0) for r in range(rounds)]
    rounds_info, log_history, all_examples, batch_size = [], [], [], None
    done_steps = 0
    for rnd, round_steps in enumerate(steps_per_round):
        round_dir = out / "checkpoints" / f"round-{rnd}"
        round_dir.mkdir(exist_ok=True)
        final_dir = round_dir / "final"
        data_file = round_dir / "examples.json"
        if data_file.exists():
            saved = json.loads(data_file.read_text())
            examples = [Example(**e) for e in saved["examples"]]
            batch_size, info = saved["batch_size"], saved["info"]
        else:
            candidates = None
            probe_examples = example_stream(objective, task_obj, train_items, len(train_items), seed,
                                            answer_prompt, judge_prompt)
            mean_len = sum(len(r["labels"]) - r["labels"].count(-100) for r in _encode(lm, probe_examples)) \
                / len(probe_examples)
            if batch_size is None:  # fixed by round 0, so every round has the same batch shape
                batch_size = max(1, round(tokens_per_step / mean_len))
            n_examples = round_steps * batch_size
            info = {"round": rnd, "steps": round_steps, "first_step": done_steps}
            if objective == "critique" and errors == "own":
                draws = math.ceil(n_examples / len(train_items))
                candidates = _own_candidates(lm, template, train_items, draws, seed, rnd, task_obj)
                flat = [ok for v in candidates.values() for _, ok in v]
                info["own_answers"] = len(flat)
                info["own_answers_correct"] = int(sum(flat))
            examples = example_stream(objective, task_obj, train_items, n_examples, seed + 7919 * rnd,
                                      answer_prompt, judge_prompt, candidates)
            if objective == "critique":
                info["candidates_correct"] = int(sum(bool(e.candidate_correct) for e in examples))
            _write_json(data_file, {"examples": [e.to_dict() for e in examples], "batch_size": batch_size,
                                    "info": info})
        rows = _encode(lm, examples)
        info = {**info, "examples": len(rows), "trained_tokens": sum(len(r["labels"]) - r["labels"].count(-100)
                                                                      for r in rows),
                "read_tokens": sum(len(r["input_ids"]) for r in rows)}
        rounds_info.append(info)
        all_examples += examples
        if (final_dir / "log_history.json").exists() and (final_dir / "weights.pt").exists():
            state = json.loads((final_dir / "log_history.json").read_text())
            log_history += state
            import torch

            lm.model.load_state_dict(torch.load(final_dir / "weights.pt", weights_only=True))
            done_steps += round_steps
            continue

        set_seed(seed + rnd)
        args = TrainingArguments(
            output_dir=str(round_dir), max_steps=round_steps, per_device_train_batch_size=batch_size,
            learning_rate=learning_rate, lr_scheduler_type="constant_with_warmup",
            warmup_steps=warmup_steps if rnd == 0 else 0, weight_decay=0.0, logging_steps=1,
            save_strategy="steps", save_steps=save_steps, save_total_limit=1, seed=seed + rnd,
            data_seed=seed + rnd, report_to="none", disable_tqdm=not progress, remove_unused_columns=False,
            dataloader_num_workers=0, use_cpu=(lm.device.type == "cpu"),
        )

        class _InOrder(Trainer):
            def _get_train_sampler(self, *a, **k):  # the recorded order, not a reshuffle
                from torch.utils.data import SequentialSampler

                return SequentialSampler(self.train_dataset)

        trainer = _InOrder(model=lm.model, args=args, train_dataset=_Encoded(rows),
                           data_collator=_collate(lm.tokenizer.pad_token_id),
                           callbacks=[_no_final_checkpoint(), *callbacks])
        if not progress:  # Trainer prints each log dict when its bar is off
            from transformers.trainer_callback import PrinterCallback

            trainer.remove_callback(PrinterCallback)
        resume = _last_checkpoint(round_dir)
        trainer.train(resume_from_checkpoint=str(resume) if resume else None)
        history = [{"step": h["step"] + done_steps, "loss": round(float(h["loss"]), 6), "round": rnd}
                   for h in trainer.state.log_history if "loss" in h]
        if rnd < rounds - 1:  # the next round starts from these weights; the last round's are saved below
            import torch

            final_dir.mkdir(exist_ok=True)
            # torch.save keeps tied weights (SmolLM2's embedding = lm_head) as one tensor; safetensors refuses them
            torch.save(lm.model.state_dict(), final_dir / "weights.tmp")
            os.replace(final_dir / "weights.tmp", final_dir / "weights.pt")
            _write_json(final_dir / "log_history.json", history)  # written last: marks the round done
        log_history += history
        done_steps += round_steps
        lm.model.eval()
        del trainer

    model_out = lm.model.merge_and_unload() if lora else lm.model
    model_out.eval()
    model_out.save_pretrained(out, safe_serialization=True)
    lm.tokenizer.save_pretrained(out)
    with open(out / DATA_FILE, "w") as f:
        for e in all_examples:
            f.write(json.dumps(e.to_dict(), sort_keys=True) + "\n")
    record = {
        "version": RECORD_VERSION,
        **request,
        "split": {"seed": split_seed, "eval_fraction": eval_fraction,
                  "train_ids": [it.id for it in train_items], "eval_ids": [it.id for it in eval_items]},
        "budget": {"steps": steps, "batch_size": batch_size, "tokens_per_step_target": tokens_per_step,
                   "trained_tokens": sum(r["trained_tokens"] for r in rounds_info),
                   "read_tokens": sum(r["read_tokens"] for r in rounds_info),
                   "examples": sum(r["examples"] for r in rounds_info),
                   "rule": "same steps; batch size = round(tokens_per_step / mean completion tokens)"},
        "rounds_info": rounds_info,
        "seeds": {"train": seed, "split": split_seed, "task": task_seed},
        "answer_template": template.to_dict(),
        "loss_curve": log_history,
        "versions": _versions(),
        "trainer": "transformers.Trainer (completion-only loss, sequential sampler over a seeded stream)",
    }
    _write_json(out / RECORD_FILE, record)
    record = read_record(out)  # as stored (JSON types), so a finished run returns the same record again
    if not keep_checkpoints:
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
    return TrainResult(out, record)
