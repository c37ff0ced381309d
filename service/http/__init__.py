"""The HTTP adapter over the runtime: the FastAPI app (``service.http.app.create_app``), its routers (v1, KServe v2,
operations), middleware, request bodies and schemas, the playground's static files, and ``textsr serve``.

Only this package imports fastapi, starlette or uvicorn; the runtime in ``service`` never imports it.
"""
