"""The package's errors: one base class, and the exit codes of the ``selfbias`` command.

Every error that selfbias raises on purpose derives from :class:`SelfbiasError` (``RunError``,
``ModelError``, ``TaskError``, ``ScoringError``, ``InputError``), so a caller catches them all with
one ``except SelfbiasError``. Their message is one line naming the place at fault (file, line,
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

__all__ = ["SelfbiasError", "InputError", "EXIT_OK", "EXIT_INTERNAL", "EXIT_BAD_INPUT", "EXIT_INTERRUPTED",
           "EXIT_CODES"]

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
