"""The version of selfbias, in one place: read by setuptools, ``selfbias.__version__`` and the run manifests."""

__version__ = "0.1.0"
