"""The one validation step: every argument checked before any model loads or any file is written.

Used by the command line and by the Python API alike (:func:`selfbias.probe`, :func:`selfbias.judge`,
:func:`selfbias.generate`), so a mistake costs nothing: no model load, no half-written run folder
that a corrected command then refuses. Every failure is one :class:`~selfbias.errors.InputError`
whose message names the argument, file or field at fault.

The checks are cheap (no model is loaded): a model spec is resolved the way
:func:`selfbias.models.load_model` resolves it (bundled package installed? ``.gguf`` readable? local
folder with a ``config.json``? hub id in the local cache when offline?); a device is asked of torch;
an output folder is tried with a hidden file that is removed at once.
"""

from __future__ import annotations

import os
import string
from collections.abc import Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from .backends.types import BACKEND_KINDS, backend_kind
from ._inputs import check_generation, check_int, json_problem, show  # re-exported (defined there)
from .errors import InputError, SelfbiasError

FIGURE_FORMATS = ("pdf", "png", "svg")
MANIFEST = "manifest.json"


# ------------------------------------------------------------------------------------ numbers


# ------------------------------------------------------------------------------------ modes, formats


def check_judge_modes(modes: Any, *, allow_empty: bool = False, option: str = "modes") -> tuple[str, ...]:
    """Judge modes: known, no duplicates; empty only where judging may be skipped."""
    from .judge_modes import judge_mode_names

    MODES = judge_mode_names()  # the built-in modes and any registered ones
    if isinstance(modes, str):
        modes = tuple(m.strip() for m in modes.split(",")) if "," in modes else (modes,)
    modes = tuple(modes)
    if not modes and not allow_empty:
        raise InputError(f"{option} is empty; use some of {', '.join(MODES)}")
    for m in modes:
        if m not in MODES:
            raise InputError(f"{option}: unknown judge mode {m!r}; use some of {', '.join(MODES)}")
    if len(set(modes)) != len(modes):
        raise InputError(f"{option} lists a mode twice: {', '.join(modes)}")
    return modes


def check_sources(option: str, value: Any, which: str) -> None:
    """An alternatives (``which="alt"``) or pairwise (``"pair"``) source list: known names, not empty."""
    from ._judge_rules import ALT_SOURCES, PAIR_SOURCES

    if value is None:
        return
    allowed = ALT_SOURCES if which == "alt" else PAIR_SOURCES
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    elif not isinstance(value, Sequence) or not all(isinstance(v, str) for v in value):
        raise InputError(f"{option} must be a comma-separated string or a list of names, got {show(value)}")
    for v in value:
        if v not in allowed:
            raise InputError(f"{option}: unknown source {show(v)}; use some of {', '.join(allowed)}")
    if not value:
        raise InputError(f"{option} is empty; use some of {', '.join(allowed)}")


def check_template_set(option: str, value: Any) -> None:
    """A judge template set by name (``default``, ``ptrue``)."""
    from ._judge_templates import TEMPLATE_SETS

    if value not in TEMPLATE_SETS:
        raise InputError(f"{option}: unknown set {show(value)}; use one of {', '.join(TEMPLATE_SETS)}")


def check_figure_formats(formats: Any) -> tuple[str, ...]:
    """Figure file formats: each one of pdf, png, svg."""
    if isinstance(formats, str):
        formats = formats.split(",")
    out = tuple(str(f).strip().lower() for f in formats if str(f).strip())
    if not out:
        raise InputError(f"--format is empty; use some of {', '.join(FIGURE_FORMATS)}")
    bad = [f for f in out if f not in FIGURE_FORMATS]
    if bad:
        raise InputError(f"--format: unknown figure format {bad[0]!r}; use some of {', '.join(FIGURE_FORMATS)}")
    return out


# ------------------------------------------------------------------------------------ device, dtype


def check_device(device: Any) -> None:
    """A device that exists here: cpu, cuda[:N] with CUDA present, mps where available."""
    if device is None or device == "auto":  # "auto": device_map="auto" over the GPUs (selfbias.models)
        return
    import torch

    try:
        d = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise InputError(f"--device {device!r}: not a device; use cpu, cuda, cuda:N or mps") from None
    if d.type == "cpu":
        return
    if d.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"--device {device!r}: this torch ({torch.__version__}) sees no CUDA device; "
                             "use --device cpu or install a CUDA build of torch")
        count = torch.cuda.device_count()
        if d.index is not None and d.index >= count:
            raise InputError(f"--device {device!r}: there are {count} CUDA device(s) (cuda:0..cuda:{count - 1})")
        return
    if d.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise InputError(f"--device {device!r}: MPS is not available here; use --device cpu")
        return
    raise InputError(f"--device {device!r}: selfbias runs on cpu, cuda or mps, not {d.type}")


def check_dtype(dtype: Any) -> None:
    import torch

    from .models import DTYPE_NAMES

    if isinstance(dtype, torch.dtype):
        return
    if dtype not in DTYPE_NAMES:
        raise InputError(f"--dtype {dtype!r}: unknown; use one of {', '.join(DTYPE_NAMES)}")


# ------------------------------------------------------------------------------------ models


def check_model_spec(spec: Any) -> None:
    """The spec resolves to something :func:`selfbias.models.load_model` can load, without loading it."""
    from .models import BUNDLED_MODELS

    if not isinstance(spec, str) or not spec.strip():
        raise InputError(f"model spec must be a non-empty string, got {spec!r}")
    entry = backend_kind(spec)
    if entry is not None:  # a served model: the spec (and URL) checked here, the server when it connects
        if entry.parse is not None:
            import importlib

            try:
                getattr(importlib.import_module(entry.module), entry.parse)(spec)
            except SelfbiasError as e:
                raise InputError(str(e)) from None
        return
    if spec in BUNDLED_MODELS:
        bundled = BUNDLED_MODELS[spec]
        if not bundled.installed():
            raise InputError(f"bundled model '{spec}' is not installed: run `{bundled.pip_install}`")
        return
    path = Path(os.path.expanduser(spec))
    if spec.endswith(".gguf"):
        check_gguf(path)
        return
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise InputError(f"model {spec!r}: folder {path} has no config.json (not a Hugging Face model folder)")
        return
    known = ", ".join(BUNDLED_MODELS)
    if path.suffix or spec.startswith((".", "/", "~")) or spec.count("/") > 1:
        raise InputError(f"model {spec!r} not found: not a bundled alias ({known}), an existing .gguf file, "
                         "a local folder or a hub id")
    if _offline() and not _in_hub_cache(spec):
        raise InputError(f"model {spec!r} not found: not a bundled alias ({known}), a .gguf file, a local folder, "
                         "nor a hub id in the local cache (offline: HF_HUB_OFFLINE is set)")


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _in_hub_cache(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except Exception:  # noqa: BLE001 - an invalid repo id is simply not cached
        return False


def check_gguf(path: Path) -> None:
    """A readable, complete GGUF file: magic, header and every tensor inside the file.

    Reads the header and tensor table only (the data is memory-mapped, not read), so it costs
    milliseconds; a truncated file fails here instead of deep inside the conversion.
    """
    if not path.is_file():
        raise InputError(f"GGUF file not found: {path}")
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except OSError as e:
        raise InputError(f"{path}: cannot read the GGUF file ({e.strerror or e})") from None
    if magic != b"GGUF":
        raise InputError(f"{path}: not a GGUF file (it starts with {magic!r}, not b'GGUF')")
    try:
        from gguf import GGUFReader
    except ImportError:  # pragma: no cover - transformers' GGUF support needs it anyway
        return
    try:
        GGUFReader(str(path))
    except Exception as e:  # noqa: BLE001 - any parse failure means a damaged file
        reason = " ".join(str(e).split())[:120] or type(e).__name__
        raise InputError(f"{path}: truncated or damaged GGUF file ({type(e).__name__}: {reason}); "
                         "download it again") from None


# ------------------------------------------------------------------------------------ templates


def load_answer_template(path: str | os.PathLike):
    """An :class:`~selfbias.prompts.AnswerTemplate` from a JSON file; errors name the file and field."""
    import json

    path = Path(path)
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: template file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read the template file ({e})") from None
    except json.JSONDecodeError as e:
        raise InputError(f"{path} line {e.lineno}: not valid JSON ({e.msg})") from None
    except (ValueError, RecursionError) as e:  # Python's limits on integer digits and nesting
        raise InputError(f"{path}: {json_problem(e)}") from None
    return check_answer_template(spec, str(path))


def check_answer_template(spec: Any, where: str = "template"):
    """An AnswerTemplate (or a dict of its fields): known keys, right types, only known ``{fields}``."""
    from .prompts import AnswerTemplate

    if isinstance(spec, AnswerTemplate):
        spec = spec.to_dict()
    if not isinstance(spec, Mapping):
        raise InputError(f"{where}: expected a JSON object of template fields, got {type(spec).__name__}")
    known = [f.name for f in fields(AnswerTemplate)]
    unknown = [k for k in spec if k not in known]
    if unknown:
        raise InputError(f"{where}: unknown field '{unknown[0]}'; template fields are {', '.join(known)}")
    for key in ("name", "format"):
        if key not in spec:
            raise InputError(f"{where}: field '{key}' is missing")
    for key in ("name", "format", "user", "prefill"):
        if key in spec and not isinstance(spec[key], str):
            raise InputError(f"{where}: field '{key}' must be a string, got {type(spec[key]).__name__}")
    if spec.get("system") is not None and not isinstance(spec["system"], str):
        raise InputError(f"{where}: field 'system' must be a string or null")
    stop = spec.get("stop", ("\n",))
    if isinstance(stop, str) or not all(isinstance(s, str) for s in stop):
        raise InputError(f"{where}: field 'stop' must be a list of strings")
    shots = spec.get("few_shot", ())
    if isinstance(shots, str) or not all(isinstance(p, (list, tuple)) and len(p) == 2
                                         and all(isinstance(x, str) for x in p) for p in shots):
        raise InputError(f"{where}: field 'few_shot' must be a list of [question, answer] pairs of strings")
    # Only 'user' is formatted (system and prefill are used verbatim: their braces are text).
    _check_fields(spec.get("user", "{question}"), {"question"}, where, "user")
    try:
        return AnswerTemplate(**{**spec, "few_shot": tuple(tuple(p) for p in shots), "stop": tuple(stop)})
    except (TypeError, ValueError) as e:
        raise InputError(f"{where}: {e}") from None


def _check_fields(text: str, allowed: set[str], where: str, key: str) -> None:
    """Every ``{name}`` in a format string is allowed (a literal brace is written ``{{``)."""
    try:
        names = [name for _lit, name, _spec, _conv in string.Formatter().parse(text) if name is not None]
    except ValueError as e:
        raise InputError(f"{where}: field '{key}' is not a valid format string ({e}); write a literal brace as {{{{")
    for name in names:
        if name not in allowed:
            raise InputError(f"{where}: field '{key}' uses unknown placeholder {{{name}}}; "
                             f"allowed: {', '.join('{' + a + '}' for a in sorted(allowed))}")


def load_judge_templates(path: str | os.PathLike) -> dict:
    """Judge template overrides from a JSON file, in either shape ``--help`` shows:
    ``{mode: {prefix, suffix, system?, options?}}`` (the same override for the chat and the plain
    format) or ``{mode: {"chat": {...}, "plain": {...}}}``. Errors name the file."""
    import json

    from ._judge_templates import FORMATS

    path = Path(path)
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: templates file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read the templates file ({e})") from None
    except json.JSONDecodeError as e:
        raise InputError(f"{path} line {e.lineno}: not valid JSON ({e.msg})") from None
    except (ValueError, RecursionError) as e:  # Python's limits on integer digits and nesting
        raise InputError(f"{path}: {json_problem(e)}") from None
    if not isinstance(spec, dict):
        raise InputError(f"{path}: expected a JSON object {{mode: template}}, got {type(spec).__name__}")
    out = {}
    for mode, value in spec.items():
        if isinstance(value, dict) and value and not set(value) <= set(FORMATS) and "format" not in value:
            value = {fmt: {**value, "format": fmt} for fmt in FORMATS}
        out[mode] = value
    return out


def check_judge_templates(templates: Any, modes: Sequence[str], where: str = "templates") -> None:
    """Judge template overrides resolve (same rules as the judge), errors naming the file."""
    from ._judge_templates import resolve_templates

    if templates is None:
        return
    if not isinstance(templates, Mapping):
        raise InputError(f"{where}: expected a JSON object {{mode: template}}, got {type(templates).__name__}")
    try:
        resolve_templates(templates, modes)
    except (TypeError, ValueError, KeyError) as e:
        raise InputError(f"{where}: {e}") from None


def check_few_shot_file(path: str | os.PathLike) -> None:
    """A few-shot JSONL file reads (every line, field and type), errors naming the file and line."""
    from ._judge_templates import read_few_shot_file

    try:
        read_few_shot_file(path)
    except RecursionError as e:
        raise InputError(f"{path}: {json_problem(e)}") from None
    except ValueError as e:
        raise InputError(" ".join(str(e).split())) from None


# ------------------------------------------------------------------------------------ folders


def _existing_ancestor(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _try_create(path: Path) -> None:
    """Create and remove one empty file (OSError if the folder takes no new file)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
    except FileExistsError:
        pass
    os.unlink(path)


def check_writable(folder: str | os.PathLike, what: str) -> None:
    """The folder (or, if it does not exist yet, its nearest existing parent) accepts a new file.

    Tried with a hidden file removed at once: permission bits say nothing on a read-only mount or
    for root, so only a write tells.
    """
    folder = Path(folder).expanduser()
    base = _existing_ancestor(folder)
    if base.exists() and not base.is_dir():
        raise InputError(f"{what} {folder}: {base} is a file, not a folder")
    try:
        _try_create(base / f".selfbias-write-test-{os.getpid()}")
    except OSError as e:
        reason = e.strerror or str(e)
        raise InputError(f"{what} {folder}: cannot write in {base} ({reason}); choose a writable folder") from None


def check_run_out(out: str | os.PathLike) -> None:
    """A probe's run folder: a folder (or nothing yet), a selfbias run or empty, writable."""
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a folder")
    if out.is_dir() and not (out / MANIFEST).exists():
        others = [e.name for e in os.scandir(out) if e.name != ".lock" and not e.name.startswith(".")]
        if others:
            raise InputError(f"--out {out}: folder is not empty and is not a selfbias run (no {MANIFEST}); "
                             "refusing to use or replace it, choose another folder")
    check_writable(out, "--out")


def check_run_folder(run: str | os.PathLike, *, writable: bool = True) -> Path:
    """An existing run folder (has ``manifest.json``), writable when the command writes into it."""
    path = Path(run).expanduser()
    if not path.exists():
        raise InputError(f"{path}: no such run folder")
    if not path.is_dir():
        raise InputError(f"{path}: not a folder")
    if not (path / MANIFEST).is_file():
        raise InputError(f"{path}: not a selfbias run folder (no {MANIFEST})")
    if writable:
        check_writable(path, "run folder")
    return path


# ------------------------------------------------------------------------------------ the steps


def validate_probe(*, models: Sequence[str], n: Any, samples: Any, temperature: Any, max_new_tokens: Any,
                   n_distractors: Any, n_perturbations: Any, judge_modes: Any, seed: Any, device: Any, dtype: Any,
                   templates: Mapping | None, loaded: Mapping | None, alt_sources: Any = None,
                   pair_sources: Any = None, template_set: Any = "default") -> tuple[str, ...]:
    """Every argument of :func:`selfbias.probe` that can be checked before the task loads; returns the
    judge modes as a tuple. The output folder is checked by :func:`check_run_out` once it is known."""
    check_generation(temperature=temperature, samples=samples, max_new_tokens=max_new_tokens,
                     n=1 if n is None else n)
    check_sources("alt_sources", alt_sources, "alt")
    check_sources("pair_sources", pair_sources, "pair")
    check_template_set("template_set", template_set)
    check_int("n_distractors", n_distractors, 0)
    check_int("n_perturbations", n_perturbations, 0)
    check_int("seed", seed, 0)
    modes = check_judge_modes(judge_modes, allow_empty=True, option="judge_modes")
    check_device(device)
    check_dtype(dtype)
    for spec in models:
        if spec not in (loaded or {}):
            check_model_spec(spec)
    for name, template in (templates or {}).items():
        check_answer_template(template, f"template of {name}")
    return modes


def validate_judge(run: Any, *, modes: Any, judges: Any, k: Any, few_shot: Any, seed: Any,
                   templates: Any, models: Mapping | None, min_k: Any = 1, alt_sources: Any = None,
                   pair_sources: Any = None, template_set: Any = "default", few_shot_file: Any = None,
                   trust_servers: Any = ()) -> tuple[str, ...]:
    """Every argument of :func:`selfbias.judge`, checked before any model loads; returns the modes."""
    from ._judge_templates import FEW_SHOT_POOL

    modes = check_judge_modes(modes)
    check_int("k", k, 1)
    check_int("min_k", min_k, 1)
    if min_k > k and any(m in ("own_samples", "alternatives") for m in modes):
        raise InputError(f"min_k={min_k} is larger than k={k}: every list is at most k long, so every item would "
                         "be skipped in the list modes; use min_k <= k")
    check_sources("alt_sources", alt_sources, "alt")
    check_sources("pair_sources", pair_sources, "pair")
    check_template_set("template_set", template_set)
    if check_int("few_shot", few_shot, 0) > len(FEW_SHOT_POOL):
        raise InputError(f"few_shot={few_shot}: there are {len(FEW_SHOT_POOL)} built-in grading examples; use fewer")
    check_int("seed", seed, 0)
    check_judge_templates(templates, modes)
    if few_shot_file is not None:
        check_few_shot_file(few_shot_file)
    check_run_folder(getattr(run, "path", run))
    specs = [judges] if isinstance(judges, (str, Mapping)) else list(judges or [])
    for spec in specs:
        name = spec if isinstance(spec, str) else (spec.get("name") if isinstance(spec, Mapping) else None)
        if isinstance(name, str) and name not in (models or {}):
            check_model_spec(name)
    return modes


def check_server_consent(run: Any, judges: Any, *, base_url: str | None = None, trust: bool = False,
                         models: Mapping | None = None) -> None:
    """A served model that the run folder names (not the user) is contacted with the API key only when
    the user names its URL again (``base_url`` / ``--base-url`` / ``$SELFBIAS_BASE_URL``) or passes
    ``trust`` (``--trust-run-servers``): a run folder received from someone else must not send
    ``$OPENAI_API_KEY`` to their host. Judges the user names (``judges``) are the user's choice, and
    models passed loaded (``models``: probe hands over the backends the user named) are not reloaded."""
    import json

    from .backends.openai import API_KEY_ENVS, ServerError, check_url, parse_spec

    if judges is not None or trust or not any(os.environ.get(e) for e in API_KEY_ENVS):
        return
    path = Path(getattr(run, "path", run)).expanduser()
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
        recorded = manifest["request"]["models"]
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return  # the run is read (and a damaged manifest refused, naming the file) when it is opened
    if not isinstance(recorded, list):
        return
    named = {check_url(u) for u in (base_url, os.environ.get("SELFBIAS_BASE_URL")) if u}
    for entry in recorded:
        spec = entry.get("name") if isinstance(entry, Mapping) else entry
        if not isinstance(spec, str) or not spec.startswith(BACKEND_KINDS["openai"].prefix) or "@" not in spec \
                or spec in (models or {}):
            continue  # a local model, a served one on the user's own --base-url, or one already connected
        try:
            name, url = parse_spec(spec)
        except ServerError as e:
            raise InputError(f"{path / MANIFEST}: {e}") from None
        if url not in named:
            raise InputError(f"{path / MANIFEST} names the served model {name!r} at {url}, a server you did not "
                             f"name: your API key is not sent there unless you pass --base-url {url} "
                             "(base_url=...) or --trust-run-servers (trust_run_servers=True)")


def too_long(lm, prompts: Mapping[str, str], reserve: int) -> list[tuple[str, int]]:
    """Ids whose prompt plus ``reserve`` new tokens do not fit ``lm``'s context, with their prompt length.

    The prompt is counted as the scorer feeds it (BOS added where the tokenizer adds it). A backend
    that states no ``context_length`` or has no tokenizer is not checked here (its server refuses).
    """
    out = []
    limit, tokenizer = getattr(lm, "context_length", None), getattr(lm, "tokenizer", None)
    if limit is None or tokenizer is None:
        return out
    limit = int(limit)
    for key, prompt in prompts.items():
        n = len(tokenizer(prompt, add_special_tokens=False)["input_ids"]) + int(bool(getattr(lm, "adds_bos", False)))
        if n + reserve > limit:
            out.append((key, n))
    return out


def context_message(lm, overflow: list[tuple[str, int]], reserve: int, what: str, skippable: bool = True) -> str:
    first, n = overflow[0]
    more = f" (and {len(overflow) - 1} more)" if len(overflow) > 1 else ""
    hint = ("shorten it, or pass --skip-invalid (skip_invalid=True) to leave such items out (recorded in the run)"
            if skippable else "shorten the item or use fewer alternatives (k)")
    return (f"item {first!r}{more}: the {what} prompt has {n:,} tokens, and with {reserve} more it exceeds "
            f"{lm.name}'s context of {lm.context_length:,} tokens; {hint}")
