"""Submission checks for `http` jobs (api/validation.py): a bad URL never reaches a queue."""

from __future__ import annotations

from ipaddress import ip_network
from typing import Any

import pytest

from workstream.api import validation
from workstream.api.errors import ApiError


def _code(call: Any) -> tuple[str, str | None]:
    with pytest.raises(ApiError) as info:
        call()
    assert info.value.status_code == 400
    return info.value.error_code, info.value.field


@pytest.mark.parametrize(
    "url", ["ftp://example.com/", "http://", "not a url", "http://user:pw@example.com/", None]
)
def test_a_malformed_url_for_an_http_job_is_400_invalid_url(url: Any) -> None:
    data = {"type": "http", "payload": {"url": url}}
    assert _code(lambda: validation.job_spec(data)) == ("invalid_url", "payload.url")


def test_other_payload_mistakes_of_an_http_job_are_400_validation_error() -> None:
    data = {"type": "http", "payload": {"url": "https://example.com/", "method": "TRACE"}}
    assert _code(lambda: validation.job_spec(data)) == ("validation_error", "payload.method")


def test_a_literal_forbidden_address_is_400_target_forbidden_when_networks_are_given() -> None:
    data = {"type": "http", "payload": {"url": "http://169.254.169.254/latest/meta-data/"}}
    code = _code(lambda: validation.job_spec(data, allowed_networks=()))
    assert code == ("target_forbidden", "payload.url")
    allowed = (ip_network("169.254.169.254/32"),)
    assert validation.job_spec(data, allowed_networks=allowed).type == "http"


def test_a_well_formed_http_job_and_other_types_pass() -> None:
    spec = validation.job_spec({"type": "http", "payload": {"url": "https://example.com/h"}})
    assert spec.payload == {"url": "https://example.com/h"}
    assert validation.job_spec({"type": "echo", "payload": {"url": "ftp://x"}}).type == "echo"


def test_a_bad_http_job_in_a_batch_is_named_by_its_index() -> None:
    data = {
        "jobs": [
            {"type": "http", "payload": {"url": "https://example.com/"}},
            {"type": "http", "payload": {"url": "gopher://example.com/"}},
        ]
    }
    assert _code(lambda: validation.batch_specs(data)) == ("invalid_url", "jobs[1].payload.url")
