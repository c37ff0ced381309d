"""Deployment tests reuse the service fixtures (model folder, server processes)."""

from tests.service.conftest import model_dir, start_server  # noqa: F401
