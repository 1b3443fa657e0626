"""Backends (local stand-in; the `backend` helper owns this file and its ``load_backend``)."""
