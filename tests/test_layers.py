"""Imports run one way: core <- service (runtime) <- service.http (adapter) <- training <- convert <- textsr (roof).

Every import statement of the project's packages counts, also those inside functions. The web stack
(fastapi, starlette, uvicorn) is imported only by ``service.http``; paddle never by ``service``.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["core", "service", "service.http", "training", "convert", "textsr"]
"""From the ground up: a module may import its own layer and the ones below it, never one above."""
FORBIDDEN = {
    "core": {"fastapi", "starlette", "uvicorn", "paddle", "onnxruntime"},
    "service": {"fastapi", "starlette", "uvicorn", "paddle"},
    "service.http": {"paddle"},
}
"""Third-party packages a layer must not import (the serving image has no paddle; the runtime no web stack)."""


def layer_of(module: str) -> str | None:
    """The deepest layer a dotted module name belongs to (``service.http.v1`` -> ``service.http``)."""
    found = [layer for layer in LAYERS if module == layer or module.startswith(layer + ".")]
    return max(found, key=len) if found else None


def imported_modules(source: str, module: str) -> list[str]:
    """Absolute names of every module ``source`` (the text of ``module``) imports, anywhere in the file."""
    package = module.rsplit(".", 1)[0]
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import: resolve against the package
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            names += [base] + [f"{base}.{a.name}" for a in node.names]
    return names


def violations(modules: dict[str, str]) -> list[str]:
    """``modules``: dotted name -> source. Returns one line per import that runs the wrong way."""
    found = []
    for module, source in sorted(modules.items()):
        mine = layer_of(module)
        if mine is None:
            continue
        for name in imported_modules(source, module):
            theirs = layer_of(name)
            if theirs is not None and LAYERS.index(theirs) > LAYERS.index(mine):
                found.append(f"{module} ({mine}) imports {name} ({theirs})")
            if name.split(".")[0] in FORBIDDEN.get(mine, set()):
                found.append(f"{module} ({mine}) imports {name.split('.')[0]}")
    return sorted(set(found))


def project_modules() -> dict[str, str]:
    out = {}
    for top in ("core", "service", "training", "convert", "textsr"):
        for path in (ROOT / top).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            out[name] = path.read_text()
    return out


def test_imports_run_one_way():
    modules = project_modules()
    assert {"core.errors", "service.pipeline", "service.http.app", "textsr.cli"} <= set(modules)
    assert violations(modules) == []


def test_the_check_catches_each_kind_of_wrong_way_import():
    bad = {
        "core.spec": "import service.settings\n",
        "service.pipeline": "def f():\n    from service.http import app\n",
        "service.images": "from fastapi import Request\n",
        "service.http.v1": "from training import losses\n",
        "training.evaluate": "from textsr.cli import main\n",
        "convert.verify": "from . import graph\nfrom textsr import client\n",
        "service.http.bodies": "import paddle\n",
    }
    assert violations(bad) == [
        "convert.verify (convert) imports textsr (textsr)",
        "convert.verify (convert) imports textsr.client (textsr)",
        "core.spec (core) imports service.settings (service)",
        "service.http.bodies (service.http) imports paddle",
        "service.http.v1 (service.http) imports training (training)",
        "service.http.v1 (service.http) imports training.losses (training)",
        "service.images (service) imports fastapi",
        "service.pipeline (service) imports service.http (service.http)",
        "service.pipeline (service) imports service.http.app (service.http)",
        "training.evaluate (training) imports textsr.cli (textsr)",
        "training.evaluate (training) imports textsr.cli.main (textsr)",
    ]
    assert violations({"training.evaluate": "from service import images\nfrom core.errors import DataError\n"}) == []


def test_readme_lists_the_layers_in_order():
    section = (ROOT / "README.md").read_text().split("## Code layout\n")[1].split("\n## ")[0]
    rows = [line.split("|")[1].strip().strip("`/").replace("/", ".") for line in section.splitlines() if line.startswith("| `")]
    assert rows == LAYERS
