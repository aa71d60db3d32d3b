"""Issue 15, finding 4: one client's bad payload must never change another client's answer.

Eight clients send valid `POST /jobs` on keep-alive connections while a ninth sends payloads
that JSON text can carry but Redis cannot store (a lone surrogate, `"\\udcff"`). When
submissions that arrived together shared one enqueue call, one such payload failed the whole
call and 91 % of the valid jobs were answered 400; each must be answered 201 and each poisoned
one 400, nothing else.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections import Counter
from dataclasses import dataclass, field

import pytest

from tests.faults.conftest import RedisFactory, StackFactory
from tests.faults.harness import PREFIX, Stopwatch
from tests.faults.results import record

# The escape stays six characters of JSON text: the server decodes it into a lone surrogate.
POISON_BODY = b'{"type": "x", "payload": "\\udcff"}'
VALID_BODY = json.dumps({"type": "echo", "payload": {"n": 1}}).encode()
HEADERS = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class PoisonSize:
    name: str
    valid_clients: int
    requests_per_client: int
    api_processes: int


FAST = PoisonSize("fast", valid_clients=8, requests_per_client=150, api_processes=1)
FULL = PoisonSize("full", valid_clients=8, requests_per_client=4_375, api_processes=1)


@dataclass
class Answers:
    valid: Counter[int] = field(default_factory=Counter)
    poisoned: Counter[int] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def post(conn: http.client.HTTPConnection, body: bytes) -> int:
    conn.request("POST", "/jobs", body=body, headers=HEADERS)
    response = conn.getresponse()
    response.read()
    return response.status


def send_valid(port: int, count: int, answers: Answers) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        for _ in range(count):
            status = post(conn, VALID_BODY)
            with answers.lock:
                answers.valid[status] += 1
    except (OSError, http.client.HTTPException) as ex:
        with answers.lock:
            answers.errors.append(f"valid client: {ex!r}")
    finally:
        conn.close()


def send_poison(port: int, stop: threading.Event, answers: Answers) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        while not stop.is_set():
            status = post(conn, POISON_BODY)
            with answers.lock:
                answers.poisoned[status] += 1
    except (OSError, http.client.HTTPException) as ex:
        with answers.lock:
            answers.errors.append(f"poisoned client: {ex!r}")
    finally:
        conn.close()


@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    "size", [FAST, pytest.param(FULL, marks=pytest.mark.chaos)], ids=lambda s: s.name
)
def test_a_poisoned_client_never_changes_the_answers_of_eight_valid_clients(
    size: PoisonSize, make_redis: RedisFactory, make_stack: StackFactory
) -> None:
    server = make_redis()
    stack = make_stack(
        server.url,
        LOG_LEVEL="warning",
        API_PROCESSES=str(size.api_processes),
        JOB_QUEUE_CAPACITY="10000000",
    )
    api = stack.start_api()
    answers = Answers()
    stop = threading.Event()
    poisoner = threading.Thread(target=send_poison, args=(api.port, stop, answers))
    clients = [
        threading.Thread(target=send_valid, args=(api.port, size.requests_per_client, answers))
        for _ in range(size.valid_clients)
    ]
    clock = Stopwatch()
    poisoner.start()
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join(timeout=500)
    stop.set()
    poisoner.join(timeout=30)

    sent = size.valid_clients * size.requests_per_client
    stored = server.client().zcard(f"{PREFIX}status:pending")
    record(
        "one poisoned client among eight (POST /jobs)",
        size.name,
        jobs=sent,
        faults=f"{sum(answers.poisoned.values())} lone-surrogate payloads",
        lost=sent - answers.valid[201],
        duplicates=None,
        wall_s=clock.elapsed,
        passed=set(answers.valid) == {201} and set(answers.poisoned) == {400},
        notes=f"valid answers {dict(answers.valid)}, poisoned answers {dict(answers.poisoned)}",
    )

    assert not answers.errors
    assert answers.valid == Counter({201: sent})
    assert set(answers.poisoned) == {400} and answers.poisoned[400] > 0
    assert stored == sent
