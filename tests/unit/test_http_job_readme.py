"""The README's signature check for receivers works against the worker's signer."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workstream.worker.http_job import sign

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def _readme_verify() -> Callable[..., bool]:
    start = README.index("<!-- http-signature")
    section = README[start : README.index("<!-- /http-signature -->")]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), namespace)
    verify: Callable[..., bool] = namespace["verify"]
    return verify


def test_the_readme_snippet_accepts_a_signed_body_and_rejects_anything_else() -> None:
    verify = _readme_verify()
    body = b'{"order": 42}'
    header = sign("s3cret", int(time.time()), body)
    assert verify("s3cret", header, body)
    assert not verify("wrong", header, body)
    assert not verify("s3cret", header, body + b" ")
    assert not verify("s3cret", sign("s3cret", int(time.time()) - 3600, body), body)
