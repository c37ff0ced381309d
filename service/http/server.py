"""``textsr serve``: load and check the models, then run uvicorn with a graceful drain on SIGTERM.

Models are loaded before the server binds its port, so a corrupt or swapped model file stops
startup with a message naming the file. On SIGTERM uvicorn stops accepting connections, lets the
requests in flight finish (``drain_timeout_s``), then the app drains its batch queues.
"""

from __future__ import annotations

import logging
import sys

from service.errors import EngineError, ModelLoadError
from service.settings import Settings


def serve(settings: Settings | None = None) -> int:
    """Run the service until SIGINT/SIGTERM; returns the process exit code."""
    import uvicorn

    from service.http.app import create_app
    from service.repository import ModelRepository

    settings = settings or Settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        repo = ModelRepository.load(
            settings.model_dir, settings.providers, settings.precision, settings.intra_op_threads, settings.default_model
        )
    except (ModelLoadError, EngineError) as exc:
        print(f"textsr serve: error: {exc}", file=sys.stderr)
        return 2
    for m in repo.models.values():
        logging.getLogger("textsr").info(
            "model %s: %s/%s %s on %s", m.name, m.manifest.algorithm, m.manifest.backbone, m.precision, m.engine.providers
        )
    app = create_app(settings, repo)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        timeout_graceful_shutdown=int(settings.drain_timeout_s),
        timeout_keep_alive=30,
    )
    uvicorn.Server(config).run()
    return 0
