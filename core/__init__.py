"""The ground floor every other package stands on: the model contract and the error tree.

``core.spec`` holds the task's numbers (shapes, scale, tensor names), ``core.manifest`` the schema of a
model folder's manifest, ``core.errors`` the project's one error root. ``core`` imports nothing of the
project; ``service`` imports only ``core``; ``training`` imports ``core`` and the service runtime;
``convert`` imports ``core`` and ``training``; ``textsr`` (CLI, client) sits on top and may import them
all. ``tests/test_layers.py`` keeps it that way.
"""

__version__ = "0.1.0"
"""The project's version (``pyproject.toml`` reads it from here)."""
