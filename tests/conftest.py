"""Shared fixtures: the real bundled models (loaded once per session) and a tiny random Llama."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"public question sets not found at {SHARED_DATA} (they sit beside the repo in CI)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def smollm2():
    from selfbias.models import load_model

    return load_model("smollm2-135m")


@pytest.fixture(scope="session")
def gemma():
    from selfbias.models import load_model

    return load_model("gemma3-270m")


@pytest.fixture(scope="session")
def tiny(smollm2):
    """A randomly initialised 2-layer Llama with SmolLM2's tokenizer (fast unit tests)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from selfbias.models import wrap_model

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(smollm2.tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
        bos_token_id=smollm2.tokenizer.bos_token_id, eos_token_id=smollm2.tokenizer.eos_token_id,
    )
    model = LlamaForCausalLM(config)
    # Random weights give near-uniform distributions; sharpen them so argmax and sampling matter.
    with torch.no_grad():
        model.lm_head.weight.mul_(40.0)
    # it stands in for SmolLM2-Instruct, so it is prompted in chat like it ("auto" would pick plain:
    # its name does not say instruct)
    return wrap_model(model, smollm2.tokenizer, name="tiny-llama", prompt_format="chat")


@pytest.fixture(scope="session")
def small_judged_run(smollm2, tmp_path_factory):
    """A small real run (SmolLM2, 6 capitals, isolated + alternatives) shared by figure and notebook tests."""
    from selfbias.probe import probe

    return probe("smollm2-135m", "capitals", n=6, samples=2, max_new_tokens=10,
                 out=tmp_path_factory.mktemp("judged") / "run", loaded={"smollm2-135m": smollm2}, progress=False)
