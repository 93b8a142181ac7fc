"""`/docs`, the Swagger UI page of `jq serve`, with its script, style and icon served by jq serve
itself from the swagger-ui-bundle package: the shim often runs where there is no internet, and
FastAPI's default page loads them from a CDN (a blank page offline)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

ASSETS = "/docs/assets"


def install(app: FastAPI, openapi_url: str = "/openapi.json") -> None:
    """Serve the Swagger UI page at /docs and its files under /docs/assets (create the app with
    docs_url=None). Raises ImportError when swagger-ui-bundle is not installed."""
    from swagger_ui_bundle import swagger_ui_path

    app.mount(ASSETS, StaticFiles(directory=swagger_ui_path), name="swagger-ui")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - API",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
        )
