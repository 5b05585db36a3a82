"""The login throttle counts failures per (user name, address), per address and per user name, never successes;
forwarded addresses count only from configured proxies; a Redis store shares the counts between API processes;
changing a password or disabling an account ends the sessions it had."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.throttle import Throttle
from model.core.accounts import create_user, set_active, set_password
from model.core.settings import Settings
from model.runtime.services import Services
from tests.api.conftest import ADMIN, ADMIN_PASSWORD, REVIEWER, make_client

PASSWORD = "reviewer-password-1"


def login(client: TestClient, username: str, password: str, *, forwarded_for: str | None = None) -> int:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    return client.post("/auth/token", data={"username": username, "password": password}, headers=headers).status_code


def from_address(client: TestClient, address: str) -> TestClient:
    """Another connection to the same running app, from ``address`` (the socket peer the app sees)."""
    return TestClient(client.app, client=(address, 50000), raise_server_exceptions=False)


def test_failures_for_a_user_from_one_address_do_not_lock_the_user_out_elsewhere(client: TestClient) -> None:
    attacker, owner = from_address(client, "127.0.0.2"), from_address(client, "127.0.0.3")
    codes = [login(attacker, ADMIN, f"wrong-guess-{i:04d}") for i in range(15)]
    assert codes == [401] * 10 + [429] * 5, codes
    assert login(attacker, ADMIN, ADMIN_PASSWORD) == 429  # the guesser's address stays locked for this name
    assert login(owner, ADMIN, ADMIN_PASSWORD) == 200


def test_successful_logins_do_not_count(monkeypatch: pytest.MonkeyPatch, trained_home: Path) -> None:
    with make_client(monkeypatch, trained_home, login_failures_per_user="2") as client:
        assert [login(client, REVIEWER, PASSWORD) for _ in range(4)] == [200] * 4
        assert [login(client, REVIEWER, "wrong-password-1") for _ in range(3)] == [401, 401, 429]


def test_failures_per_address_are_capped_across_user_names(monkeypatch: pytest.MonkeyPatch,
                                                           trained_home: Path) -> None:
    with make_client(monkeypatch, trained_home, login_failures_per_address="3") as client:
        codes = [login(client, f"user{i}", "wrong-password-1") for i in range(4)]
        assert codes == [401, 401, 401, 429], codes
        assert login(from_address(client, "127.0.0.5"), REVIEWER, PASSWORD) == 200


def test_failures_for_a_user_are_capped_across_addresses(monkeypatch: pytest.MonkeyPatch, trained_home: Path) -> None:
    # an attacker with an IPv6 /48 has 65,536 /64s, each its own address: one guess from each must still count
    with make_client(monkeypatch, trained_home, login_failures_per_user_any_address="4") as client:
        guessers = [from_address(client, f"2001:db8:0:{i:x}::1") for i in range(5)]
        codes = [login(guesser, ADMIN, "wrong-password-1") for guesser in guessers]
        assert codes == [401, 401, 401, 401, 429], codes
        assert login(from_address(client, "127.0.0.3"), ADMIN, ADMIN_PASSWORD) == 429  # the price: a lockout
        assert login(from_address(client, "127.0.0.3"), REVIEWER, PASSWORD) == 200  # of that one name only


def test_forwarded_addresses_count_only_from_trusted_proxies(monkeypatch: pytest.MonkeyPatch,
                                                             trained_home: Path) -> None:
    with make_client(monkeypatch, trained_home, login_failures_per_user="2",
                     trusted_proxies="127.0.0.9, 10.9.0.0/16") as client:
        stranger, proxy = from_address(client, "127.0.0.2"), from_address(client, "10.9.8.7")
        # an untrusted peer's X-Forwarded-For is ignored: a new claimed address per guess changes nothing
        spoofed = [login(stranger, ADMIN, "wrong-password-1", forwarded_for=f"198.51.100.{i}") for i in range(3)]
        assert spoofed == [401, 401, 429], spoofed
        # a trusted proxy's is honoured: the browser behind it is locked out, another browser is not
        locked = [login(proxy, ADMIN, "wrong-password-1", forwarded_for="203.0.113.7") for _ in range(3)]
        assert locked == [401, 401, 429], locked
        assert login(proxy, ADMIN, ADMIN_PASSWORD, forwarded_for="203.0.113.8") == 200
        # the address the chain's last trusted hop saw counts, not what the client wrote to its left
        assert login(proxy, ADMIN, ADMIN_PASSWORD, forwarded_for="203.0.113.8, 203.0.113.7") == 429


def test_trusted_proxies_must_be_addresses_or_networks() -> None:
    with pytest.raises(ValueError, match="SPROUT_TRUSTED_PROXIES"):
        Settings(_env_file=None, trusted_proxies="*")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="SPROUT_TRUSTED_PROXIES"):
        Settings(_env_file=None, trusted_proxies="10.0.0.0/8, ingress.local")  # type: ignore[call-arg]
    assert Settings(_env_file=None, trusted_proxies=" 10.0.0.0/8,::1 ").trusted_proxy_list == [  # type: ignore[call-arg]
        "10.0.0.0/8", "::1"]


@pytest.fixture
def redis_url(redis_server: str) -> Iterator[str]:
    """The session Redis, emptied after the test (its counts would leak into the next one)."""
    yield redis_server
    import redis

    redis.Redis.from_url(redis_server).flushall()


def test_a_redis_store_shares_the_counts_between_api_processes(monkeypatch: pytest.MonkeyPatch, trained_home: Path,
                                                               redis_url: str) -> None:
    one, two = Throttle.from_uri(redis_url), Throttle.from_uri(redis_url)
    one.hit("2/minute", "shared")
    two.hit("2/minute", "shared")
    with pytest.raises(Exception, match="Too many requests"):
        one.hit("2/minute", "shared")
    settings = {"login_failures_per_user": "2", "rate_limit_storage": redis_url}
    with make_client(monkeypatch, trained_home, **settings) as first, \
            make_client(monkeypatch, trained_home, **settings) as second:
        assert first.app is not second.app
        assert [login(first, ADMIN, "wrong-password-1"), login(second, ADMIN, "wrong-password-1")] == [401, 401]
        assert login(first, ADMIN, ADMIN_PASSWORD) == 429 and login(second, ADMIN, ADMIN_PASSWORD) == 429


def test_changing_a_password_or_disabling_an_account_ends_its_sessions(client: TestClient,
                                                                        trained_home: Path) -> None:
    svc = Services.from_settings(Settings(_env_file=None, home=trained_home))  # type: ignore[call-arg]
    try:
        with svc.session() as session:
            create_user(session, username="leaver", password="leaver-password-1")

        def token(password: str) -> dict[str, str]:
            resp = client.post("/auth/token", data={"username": "leaver", "password": password})
            assert resp.status_code == 200, resp.text
            return {"Authorization": f"Bearer {resp.json()['access_token']}"}

        before = token("leaver-password-1")
        assert client.get("/auth/me", headers=before).status_code == 200
        with svc.session() as session:
            set_password(session, username="leaver", password="leaver-password-2")
        assert client.get("/auth/me", headers=before).status_code == 401
        after = token("leaver-password-2")
        assert client.get("/auth/me", headers=after).status_code == 200
        with svc.session() as session:
            set_active(session, username="leaver", active=False)
            set_active(session, username="leaver", active=True)
        assert client.get("/auth/me", headers=after).status_code == 401  # re-enabling brings no old token back
        assert client.get("/auth/me", headers=token("leaver-password-2")).status_code == 200
    finally:
        with svc.session() as session:
            set_active(session, username="leaver", active=False)
        svc.close()
