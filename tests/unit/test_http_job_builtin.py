"""`http` is a built-in type, configured from the worker's settings."""

from __future__ import annotations

from ipaddress import ip_network

from workstream.common.settings import Settings
from workstream.worker import http_job
from workstream.worker.registry import load_modules, lookup


def test_http_is_registered_with_the_built_ins() -> None:
    load_modules([])
    assert lookup("http") is http_job.http


def test_the_handler_takes_networks_secret_and_body_cap_from_settings() -> None:
    settings = Settings.from_environ(
        {
            "HTTP_JOB_ALLOWED_NETWORKS": "10.1.0.0/16",
            "WEBHOOK_SECRET": "s3",
            "HTTP_JOB_MAX_RESPONSE_BYTES": "1000",
        }
    )
    config = http_job.HttpJobConfig.from_settings(settings)
    assert config.allowed_networks == (ip_network("10.1.0.0/16"),)
    assert (config.webhook_secret, config.max_response_bytes) == ("s3", 1000)
    assert "s3" not in repr(config) and "s3" not in repr(settings)
