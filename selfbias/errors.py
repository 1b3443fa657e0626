"""The package's errors: one base class, and the exit codes of the ``selfbias`` command.

Every error that selfbias raises on purpose derives from :class:`SelfbiasError` and is defined here
(``InputError``, ``RunError``, ``ModelError``, ``TaskError``, ``ScoringError`` / ``ContextTooLong``,
``GenerationTimeout``, ``ServerError`` / ``ServerUnavailable`` / ``ServerMisaligned``), so a caller
catches them all with one ``except SelfbiasError`` and no module needs another one's code to raise
them (the modules that used to define them re-export them: ``selfbias.store.RunError`` still works). Their message is one line naming the place at fault (file, line,
field, argument or item id) and, where there is one, what to do.

Exit codes of the command line (also in ``selfbias --help`` and the README):

==== ==================================================================================
0    success
1    internal error: a bug; one line on stderr names the file holding the full traceback
2    bad input: an argument, file, model, device or run folder is not usable (one line)
130  interrupted (Ctrl-C or SIGTERM); a run resumes when the same command is run again
==== ==================================================================================
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["SelfbiasError", "InputError", "RunError", "ModelError", "TaskError", "ScoringError", "ContextTooLong",
           "GenerationTimeout", "ServerError", "ServerUnavailable", "ServerMisaligned",
           "EXIT_OK", "EXIT_INTERNAL", "EXIT_BAD_INPUT", "EXIT_INTERRUPTED", "EXIT_CODES"]

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130

EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_INTERNAL: "internal error (the full traceback is written to a file that the message names)",
    EXIT_BAD_INPUT: "bad input: an argument, file, model, device or run folder is not usable",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C or SIGTERM); run the same command again to resume",
}


class SelfbiasError(Exception):
    """Base of every error selfbias raises on purpose; the message is one line naming the place.

    The command line prints it as ``error: <message>`` and exits with :data:`EXIT_BAD_INPUT`.
    """

    exit_code = EXIT_BAD_INPUT


class InputError(SelfbiasError, ValueError):
    """An argument, setting, template, device or output folder is not usable.

    Raised by the validation step (:mod:`selfbias._validate`) before any model loads or any file
    is written; a ``ValueError`` too, so code that caught ``ValueError`` keeps working.
    """


class RunError(SelfbiasError, RuntimeError):
    """A run folder or one of its tables cannot be used as asked.

    The message is one line naming the path or field and, where there is one, what to do.
    """


class ModelError(SelfbiasError, RuntimeError):
    """A model could not be found or loaded; the message says which and what to do."""


class TaskError(SelfbiasError, ValueError):
    """A task could not be loaded: one line naming the file, line and field where known."""

    def __init__(self, reason: str, *, path: str | Path | None = None, line: int | None = None,
                 field: str | None = None, record: int | None = None):
        self.path, self.line, self.field, self.reason, self.record = path, line, field, reason, record
        where = "" if path is None else str(path)
        if line is not None:
            where += f" line {line}"
        if record is not None:  # a record of a JSON array file (often all on one line)
            where += f" record {record}"
        what = reason if field is None else f"field '{field}' {reason}"
        super().__init__(f"{where}: {what}" if where else what)


class ScoringError(SelfbiasError, ValueError):
    """Bad scoring input (empty continuation, nothing to condition on)."""


class ContextTooLong(ScoringError):
    """Prompt + continuation exceed the model's context window and truncation was not asked for."""


class GenerationTimeout(SelfbiasError):
    """A batch ran past its time bound (``batch_seconds``); the message names the batch."""


class ServerError(SelfbiasError):
    """The server refused a request (a 4xx other than 429) or answered something unusable."""


class ServerUnavailable(ServerError):
    """The server did not answer after all retries; the cached responses let the run resume."""


class ServerMisaligned(ServerError):
    """The server's prompt log-probs fail the alignment check (see the module doc)."""
