"""Convert a GGUF file once into a Hugging Face folder, cached and crash-safe.

Layout: ``<cache>/models/<gguf stem>-<sha256[:16]>/`` holding ``config.json``, the safetensors
weights, the tokenizer files and ``selfbias-cache.json`` (the marker, written last, listing every
file and its size). A conversion is written to a ``.tmp-*`` sibling and renamed into place, so an
interrupted conversion never leaves a half-written entry; an entry whose marker is missing or whose
files differ from it in size is treated as damaged and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path

MARKER = "selfbias-cache.json"
ENV_VAR = "SELFBIAS_CACHE"


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    if cache_dir is None:
        cache_dir = os.environ.get(ENV_VAR) or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "selfbias"
    return Path(cache_dir).expanduser() / "models"


def file_sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def is_valid(folder: Path) -> bool:
    """The marker exists and every file it lists is present with its recorded size."""
    try:
        marker = json.loads((folder / MARKER).read_text())
        return all((folder / name).stat().st_size == size for name, size in marker["files"].items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


def is_cached(bundled, cache_dir=None) -> bool:
    stem = Path(bundled.filename).stem
    root = cache_root(cache_dir)
    return root.is_dir() and any(is_valid(p) for p in root.glob(f"{stem}-*"))


def converted_folder(gguf: Path, cache_dir=None, *, rebuild: bool = False) -> tuple[Path, str]:
    """Return (HF folder, sha256 of the GGUF), converting on first use or when damaged."""
    gguf = Path(gguf)
    sha = file_sha256(gguf)
    root = cache_root(cache_dir)
    dest = root / f"{gguf.stem}-{sha[:16]}"
    if not rebuild and is_valid(dest):
        return dest, sha
    root.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp(root, gguf.stem)
    tmp = root / f".tmp-{gguf.stem}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        _convert(gguf, tmp, sha)
        if dest.exists():
            shutil.rmtree(dest)  # damaged (or being replaced on rebuild)
        try:
            os.replace(tmp, dest)
        except OSError:
            # Another process finished the same conversion first: keep theirs if it is whole.
            if not is_valid(dest):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest, sha


def _convert(gguf: Path, out: Path, sha: str) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # transformers dequantises GGUF weights to fp32 on load but keeps a quantizer marker that makes
    # save_pretrained refuse; the weights are plain tensors by now, so the marker can go.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    files = {p.name: p.stat().st_size for p in out.iterdir() if p.is_file()}
    marker = {"gguf": str(gguf), "gguf_sha256": sha, "files": files}
    (out / MARKER).write_text(json.dumps(marker, indent=1))


def _remove_stale_tmp(root: Path, stem: str) -> None:
    """Delete half-written conversions left by processes that no longer run."""
    for tmp in root.glob(f".tmp-{stem}-*"):
        try:
            pid = int(tmp.name.split("-")[-2])
            os.kill(pid, 0)
        except (ValueError, IndexError, ProcessLookupError):
            shutil.rmtree(tmp, ignore_errors=True)
        except PermissionError:
            pass
