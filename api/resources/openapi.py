"""/openapi.json: the document built once per app."""

from __future__ import annotations

import falcon

from workstream.api.openapi import build_document
from workstream.common.serialization import dumps


class OpenApi:
    def __init__(self, max_payload_bytes: int) -> None:
        self._body = dumps(build_document(max_payload_bytes)).encode("utf-8")

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.data = self._body
        resp.content_type = falcon.MEDIA_JSON
