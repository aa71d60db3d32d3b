"""Scoped tokens: every route declares its scope in api.scopes, and the API enforces it."""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable, Iterator

import falcon.inspect
import falcon.testing
import pytest
import redis

from tests.integration import api_fixtures
from workstream.api.middleware import BearerAuth
from workstream.api.scopes import ROUTE_SCOPES, Scope
from workstream.common.errors import SettingsError
from workstream.common.settings import Settings, load_or_exit

app = api_fixtures.app
make_client = api_fixtures.make_client

TestClient = falcon.testing.TestClient
MakeClient = Callable[..., TestClient]
TOKENS = {scope: f"{scope.value}-token-0123" for scope in Scope}
SCOPED = ",".join(f"{scope.value}:{token}" for scope, token in TOKENS.items())
# Values for the routes' path fields: a job that does not exist, a queue that does; any other
# field (a route added later) gets a valid-looking name.
FIELDS = {"job_id": "00000000000000000000000000", "name": "default"}
OTHER_FIELD = "scope-test"


def routes(app: api_fixtures.App) -> Iterator[tuple[str, str]]:
    """(template, method) of every responder the app has, Falcon's own (405, OPTIONS) aside."""
    for route in falcon.inspect.inspect_routes(app):
        for method in route.methods:
            if not method.internal:
                yield route.path, method.method


def bearer(scope: Scope) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[scope]}"}


@pytest.fixture
def scoped(make_client: MakeClient) -> TestClient:
    return make_client(API_TOKENS=SCOPED)


def test_every_route_of_the_app_declares_its_scopes(app: api_fixtures.App) -> None:
    missing = sorted(set(routes(app)) - set(ROUTE_SCOPES))
    assert not missing, f"add these to api.scopes.ROUTE_SCOPES: {missing}"


def test_every_route_answers_each_scope_as_its_table_row_says(
    app: api_fixtures.App, scoped: TestClient
) -> None:
    for template, method in routes(app):
        path = re.sub(r"\{(\w+)\}", lambda m: FIELDS.get(m.group(1), OTHER_FIELD), template)
        for scope in Scope:
            resp = scoped.simulate_request(method, path, headers=bearer(scope))
            may = scope is Scope.ADMIN or scope in ROUTE_SCOPES[template, method]
            refused = resp.status_code == 403 and resp.json["error"]["code"] == "insufficient_scope"
            assert resp.status_code != 401, (method, path, scope)
            assert refused is not may, (method, path, scope, resp.status_code)


def test_a_token_outside_its_scope_gets_403_naming_the_scopes_needed(
    scoped: TestClient, redis_client: redis.Redis
) -> None:
    resp = scoped.simulate_post("/jobs", json={"type": "echo"}, headers=bearer(Scope.READ))
    assert resp.status_code == 403
    assert resp.json["error"]["code"] == "insufficient_scope"
    assert "produce or admin" in resp.json["error"]["message"]
    assert resp.headers["WWW-Authenticate"] == (
        'Bearer error="insufficient_scope", scope="produce admin"'
    )
    assert redis_client.dbsize() == 0


def test_produce_submits_and_reads_jobs_but_nothing_else(scoped: TestClient) -> None:
    created = scoped.simulate_post("/jobs", json={"type": "echo"}, headers=bearer(Scope.PRODUCE))
    assert created.status_code == 201
    job_id = created.json["id"]
    assert scoped.simulate_get(f"/jobs/{job_id}", headers=bearer(Scope.PRODUCE)).status_code == 200
    for method, path in [("GET", "/queues"), ("POST", f"/jobs/{job_id}/cancel")]:
        resp = scoped.simulate_request(method, path, headers=bearer(Scope.PRODUCE))
        assert resp.status_code == 403, path


def test_admin_pauses_a_queue_that_read_may_only_look_at(scoped: TestClient) -> None:
    pause = "/queues/default/pause"
    assert scoped.simulate_post(pause, headers=bearer(Scope.READ)).status_code == 403
    assert scoped.simulate_post(pause, headers=bearer(Scope.ADMIN)).status_code == 200
    assert scoped.simulate_get("/queues/default", headers=bearer(Scope.READ)).json["paused"]


@pytest.mark.parametrize("scope", [Scope.READ, Scope.ADMIN])
def test_the_dashboards_reads_work_with_a_read_or_admin_token(
    scoped: TestClient, scope: Scope
) -> None:
    for path in ["/queues", "/workers", "/jobs", "/metrics", "/stats/timeline", "/openapi.json"]:
        assert scoped.simulate_get(path, headers=bearer(scope)).status_code == 200, path


def test_api_token_holds_every_scope_beside_scoped_tokens(make_client: MakeClient) -> None:
    client = make_client(API_TOKEN="all-0123", API_TOKENS="read:reader-0123")
    headers = {"Authorization": "Bearer all-0123"}
    assert client.simulate_post("/queues/default/pause", headers=headers).status_code == 200
    reader = {"Authorization": "Bearer reader-0123"}
    assert client.simulate_get("/queues", headers=reader).status_code == 200


def test_a_token_listed_with_two_scopes_holds_both(make_client: MakeClient) -> None:
    client = make_client(API_TOKENS="produce:both-0123,read:both-0123")
    headers = {"Authorization": "Bearer both-0123"}
    assert client.simulate_post("/jobs", json={"type": "echo"}, headers=headers).status_code == 201
    assert client.simulate_get("/queues", headers=headers).status_code == 200


def test_an_unknown_token_is_still_401(scoped: TestClient) -> None:
    resp = scoped.simulate_get("/jobs", headers={"Authorization": "Bearer read-token-012"})
    assert resp.status_code == 401
    assert resp.json["error"]["code"] == "unauthorized"


def test_every_configured_token_is_compared_whichever_matches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    auth = BearerAuth(["first"], [("read", "second"), ("work", "third")])
    calls: list[bytes] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append(b)
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    for given in ["first", "third", "none"]:
        calls.clear()
        auth._scopes(given)
        assert len(calls) == 3, given


@pytest.mark.parametrize(
    "raw", ["read", "reader:x", "read:", ":x", "read:ok,writer:secret-1"], ids=repr
)
def test_malformed_api_tokens_are_refused_without_echoing_a_token(raw: str) -> None:
    with pytest.raises(SettingsError, match=r"^API_TOKENS: entry \d is not scope:token") as info:
        Settings.from_environ({"API_TOKENS": raw})
    assert "secret" not in str(info.value)


def test_malformed_api_tokens_stop_the_process_with_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as info:
        load_or_exit({"API_TOKENS": "produce:p,bogus:q"})
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "API_TOKENS: entry 2" in err
