"""/docs: Swagger UI, an interactive reference built in the browser from /openapi.json. Its files come
from the pinned `swagger-ui-bundle-v2` package and are served by the gateway itself (no CDN); a small
init script file starts it, so the page runs under a CSP without inline script."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web
from swagger_ui_bundle import swagger_ui_path

HERE = Path(__file__).parent
# The only files of the bundle the page uses (its index.html has inline script: not served).
ASSETS = {
    "swagger-ui-bundle.js": Path(swagger_ui_path) / "swagger-ui-bundle.js",
    "swagger-ui.css": Path(swagger_ui_path) / "swagger-ui.css",
    "favicon-32x32.png": Path(swagger_ui_path) / "favicon-32x32.png",
    "init.js": HERE / "init.js",
    "docs.css": HERE / "docs.css",
}
# Swagger UI sets styles through the DOM (allowed) and draws a few icons from data: URLs.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
)
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY"}
PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Cards API reference</title>
<link rel="icon" type="image/png" href="/docs/static/favicon-32x32.png">
<link rel="stylesheet" href="/docs/static/swagger-ui.css">
<link rel="stylesheet" href="/docs/static/docs.css">
<script src="/docs/static/swagger-ui-bundle.js" defer></script>
<script src="/docs/static/init.js" defer></script>
</head>
<body>
<main id="swagger-ui"><noscript>The interactive reference needs JavaScript; the description itself is
<a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1).</noscript></main>
</body>
</html>
"""


async def page(request: web.Request) -> web.Response:
    return web.Response(text=PAGE, content_type="text/html", headers=HEADERS)


async def asset(request: web.Request) -> web.StreamResponse:
    path = ASSETS.get(request.match_info["name"])
    if path is None:
        raise web.HTTPNotFound()
    return web.FileResponse(path, headers=HEADERS | {"Cache-Control": "public, max-age=3600"})


def routes() -> list[web.RouteDef]:
    return [
        web.get("/docs", page, name="docs"),
        web.get("/docs/static/{name}", asset, name="docs_static"),
    ]
