"""Completion callbacks on real processes: the API takes callback_url (and refuses a forbidden
one), a worker process runs the job and then delivers its record, signed with the worker's
WEBHOOK_SECRET; the job shows the callback job, whose attempt is visible through the API."""

from __future__ import annotations

import hashlib
import hmac

from tests.support.callback_receiver import CallbackReceiver
from tests.support.stack import Stack, wait_until

ENV = {"HTTP_JOB_ALLOWED_NETWORKS": "127.0.0.1/32", "WEBHOOK_SECRET": "s3cret"}


def test_a_job_submitted_with_a_callback_url_is_reported_to_it_when_done(stack: Stack) -> None:
    api = stack.start_api(ENV)
    stack.start_worker(ENV)
    receiver = CallbackReceiver()
    try:
        status, body, _ = api.request(
            "POST", "/jobs", {"type": "echo", "callback_url": "http://127.0.0.2:9/x"}
        )
        assert (status, body["error"]["code"]) == (400, "target_forbidden")
        status, job, _ = api.request(
            "POST", "/jobs", {"type": "echo", "payload": {"n": 7}, "callback_url": receiver.url()}
        )
        assert status == 201 and job["callback_url"] == receiver.url()
        assert wait_until(lambda: len(receiver.deliveries) == 1, 30, 0.1)
        [delivery] = receiver.deliveries
        status, final, _ = api.request("GET", f"/jobs/{job['id']}")
        assert delivery.record == final and final["status"] == "completed"
        fields = dict(part.split("=", 1) for part in delivery.signature.split(","))
        mac = hmac.new(b"s3cret", f"{fields['t']}.".encode() + delivery.raw, hashlib.sha256)
        assert hmac.compare_digest(mac.hexdigest(), fields["v1"])

        def delivered() -> bool:
            answer = api.request("GET", f"/jobs/{final['callback_job_id']}")[1]
            return bool(answer["status"] == "completed")

        assert wait_until(delivered, 10, 0.1)
        _, callback, _ = api.request("GET", f"/jobs/{final['callback_job_id']}")
        assert (callback["type"], callback["callback_for"]) == ("http", job["id"])
        assert callback["result"]["status"] == 200 and callback["attempts"] == 1
    finally:
        receiver.stop()
