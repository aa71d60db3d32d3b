"""The operator dashboard: `/ui` answers index.html, `/ui/static/...` the assets beside it.

Plain files, no build step: the page is vanilla JavaScript that calls the same REST API with
the bearer token the operator types in (kept in sessionStorage, never in a cookie).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import falcon

STATIC_DIR: Final = Path(__file__).resolve().parent / "static"
INDEX_FILE: Final = STATIC_DIR / "index.html"

# Everything the page needs is local; `data:` images only for the inline favicon.
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; connect-src 'self'"
)


# index.html names its assets `...?v=dev`; the served page swaps in a stamp of the files' mtimes
# so a browser never pairs a new page with a cached old app.js (the assets carry no no-cache).
VERSION_MARKER: Final = b"?v=dev"


def asset_version(static_dir: Path = STATIC_DIR) -> str:
    newest = max((entry.stat().st_mtime_ns for entry in static_dir.iterdir()), default=0)
    return format(newest, "x")


def render_index(index_file: Path = INDEX_FILE) -> bytes:
    stamp = b"?v=" + asset_version(index_file.parent).encode("ascii")
    return index_file.read_bytes().replace(VERSION_MARKER, stamp)


class UiIndex:
    """Serves index.html for `/ui` and `/ui/`, read fresh so a redeploy shows at once."""

    def __init__(self, index_file: Path = INDEX_FILE) -> None:
        self._index_file = index_file

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._headers(resp)
        resp.data = render_index(self._index_file)

    def on_head(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._headers(resp)
        resp.content_length = len(render_index(self._index_file))

    @staticmethod
    def _headers(resp: falcon.Response) -> None:
        resp.content_type = "text/html; charset=utf-8"
        resp.set_header("Cache-Control", "no-cache")
        resp.set_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        resp.set_header("X-Content-Type-Options", "nosniff")
        resp.set_header("X-Frame-Options", "DENY")
        resp.set_header("Referrer-Policy", "no-referrer")


def register_ui(app: falcon.App[falcon.Request, falcon.Response]) -> None:
    """Mount the dashboard on `app`: `/ui`, `/ui/` and the static files under `/ui/static/`."""
    index = UiIndex()
    app.add_route("/ui", index)
    app.add_route("/ui/", index)
    app.add_static_route("/ui/static", str(STATIC_DIR))
