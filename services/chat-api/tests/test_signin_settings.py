"""Sign-in settings: all or nothing, safe transport, an allowlist, secrets from files; the allowlist's
rules on claims (tests/integration/test_signin.py runs the real provider end to end)."""

from __future__ import annotations

from pathlib import Path

import pytest
from chat_api.config import Settings
from chat_api.signin import SignIn, SignInConfigError
from pydantic import ValidationError

pytestmark = pytest.mark.unit


def settings(tmp_path: Path, **overrides: object) -> Settings:
    secret = tmp_path / "client-secret"
    secret.write_text("client-secret-value\n")
    key = tmp_path / "session-key"
    key.write_text("k" * 48)
    values: dict[str, object] = {
        "oidc_issuer_url": "https://accounts.google.com",
        "oidc_client_id": "123.apps.googleusercontent.com",
        "oidc_client_secret_file": secret,
        "oidc_redirect_url": "https://chat.example.com/auth/callback",
        "oidc_allowed_domains": "example.com, Example.org",
        "session_secret_file": key,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def test_sign_in_is_off_by_default_and_local_mode_stays_open() -> None:
    s = Settings()
    assert not s.signin_enabled and s.session_cookie_secure


def test_a_complete_configuration_turns_it_on(tmp_path: Path) -> None:
    s = settings(tmp_path)
    assert s.signin_enabled and s.oidc_allowed_domains == ["example.com", "Example.org"]
    signin = SignIn(s)
    assert signin.domains == {"example.com", "example.org"}
    options = signin.middleware_options()
    assert options["https_only"] is True and options["same_site"] == "lax"
    # The session ends at 8 h (signed inside); the cookie lasts a day longer to say "expired".
    assert options["max_age"] == 8 * 3600 + 86400 and options["secret_key"] == "k" * 48


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"oidc_client_id": ""}, "needs CHAT_API_OIDC_CLIENT_ID"),
        ({"session_secret_file": ""}, "needs CHAT_API_SESSION_SECRET_FILE"),
        ({"oidc_issuer_url": "http://idp.example.com"}, "must be an https:// URL"),
        ({"oidc_redirect_url": "https://chat.example.com/callback"}, "must end in /auth/callback"),
        ({"session_cookie_secure": False}, "only for tests on http://127.0.0.1"),
        ({"oidc_allowed_domains": ""}, "nobody is allowed"),
        ({"oidc_scopes": "email profile"}, "must include openid"),
        ({"oidc_issuer_url": ""}, "set but CHAT_API_OIDC_ISSUER_URL is empty"),
    ],
)
def test_a_wrong_or_partial_configuration_names_the_setting(
    tmp_path: Path, overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        settings(tmp_path, **overrides)


def test_the_insecure_cookie_is_allowed_for_loopback_tests_only(tmp_path: Path) -> None:
    s = settings(
        tmp_path,
        oidc_issuer_url="http://127.0.0.1:5556",
        oidc_redirect_url="http://127.0.0.1:8080/auth/callback",
        session_cookie_secure=False,
    )
    assert SignIn(s).middleware_options()["https_only"] is False


def test_secrets_come_from_readable_files_and_a_short_session_key_is_refused(tmp_path: Path) -> None:
    s = settings(tmp_path)
    (tmp_path / "session-key").write_text("too-short")
    with pytest.raises(SignInConfigError, match="at least 32"):
        SignIn(s)
    with pytest.raises(SignInConfigError, match="cannot be read"):
        SignIn(settings(tmp_path, oidc_client_secret_file=tmp_path / "missing"))


@pytest.mark.parametrize(
    ("claims", "admitted"),
    [
        ({"sub": "1", "email": "ada@example.com", "email_verified": True}, True),
        ({"sub": "1", "email": "ada@EXAMPLE.org", "email_verified": "true"}, True),  # Cognito's string
        ({"sub": "1", "email": "ada@example.com", "email_verified": False}, False),
        ({"sub": "1", "email": "ada@example.com"}, False),  # unverified: proves nothing
        ({"sub": "1", "email": "ada@example.com.evil.net", "email_verified": True}, False),
        ({"sub": "1", "email": "ada@sub.example.com", "email_verified": True}, False),
        ({"sub": "1", "email": "x@other.net", "email_verified": True, "groups": ["ml-team"]}, True),
        ({"sub": "1", "email": "x@other.net", "email_verified": True, "groups": ["sales"]}, False),
        ({"sub": "1", "cognito:groups": ["ml-team"]}, False),  # another claim name unless configured
    ],
)
def test_the_allowlist_admits_verified_domains_and_groups(
    tmp_path: Path, claims: dict[str, object], admitted: bool
) -> None:
    signin = SignIn(settings(tmp_path, oidc_allowed_groups="ml-team"))
    assert (signin.refusal(claims) == "") is admitted


def test_the_groups_claim_name_is_configurable_for_cognito(tmp_path: Path) -> None:
    signin = SignIn(
        settings(
            tmp_path, oidc_allowed_domains="", oidc_allowed_groups="ml", oidc_groups_claim="cognito:groups"
        )
    )
    assert signin.refusal({"sub": "1", "cognito:groups": ["ml"]}) == ""
    assert "members of the group ml" in signin.refusal({"sub": "1", "cognito:groups": ["ops"]})
