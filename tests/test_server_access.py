"""Who may call `mreg serve`: tokens with names and roles, kept secret."""

from __future__ import annotations

import pytest

from mreg.errors import UsageError
from mreg.server.access import AccessDenied, WriteForbidden, load_access

WRITER = "w" * 20
READER = "r" * 20


@pytest.fixture
def token_file(tmp_path, monkeypatch):
    monkeypatch.delenv("MREG_SERVER_TOKENS", raising=False)
    path = tmp_path / "tokens"
    path.write_text(f"# team tokens\nalice write {WRITER}\nci read {READER}  # the CI job\n")
    return path


def test_a_server_without_tokens_lets_anyone_read_and_nobody_write(monkeypatch):
    monkeypatch.delenv("MREG_SERVER_TOKENS", raising=False)
    access = load_access()
    assert access.identify(None).name == "anonymous"
    with pytest.raises(WriteForbidden, match="read-only"):
        access.authorize_write(None)


def test_a_token_names_its_caller_and_its_role(token_file):
    access = load_access(token_file)
    assert access.authorize_write(WRITER).name == "alice"
    assert access.identify(READER).name == "ci"
    with pytest.raises(WriteForbidden, match="'ci' may only read"):
        access.authorize_write(READER)


def test_with_tokens_a_missing_or_wrong_token_is_refused(token_file):
    access = load_access(token_file)
    with pytest.raises(AccessDenied):
        access.identify(None)
    with pytest.raises(AccessDenied) as refused:
        access.identify("x" * 20)
    assert "x" * 20 not in str(refused.value)


def test_read_only_mode_refuses_even_a_write_token(token_file):
    with pytest.raises(WriteForbidden):
        load_access(token_file, read_only=True).authorize_write(WRITER)


def test_tokens_also_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("MREG_SERVER_TOKENS", f"bob write {WRITER}; eve read {READER}")
    access = load_access()
    assert access.authorize_write(WRITER).name == "bob"
    assert access.identify(READER).name == "eve"


@pytest.mark.parametrize(
    ("line", "complaint"),
    [("alice write", "3 fields"), (f"alice admin {WRITER}", "role"), ("alice read short", "16")],
)
def test_a_malformed_token_line_is_refused_without_echoing_it(
    tmp_path, monkeypatch, line, complaint
):
    monkeypatch.delenv("MREG_SERVER_TOKENS", raising=False)
    path = tmp_path / "tokens"
    path.write_text(line + "\n")
    with pytest.raises(UsageError, match=complaint) as refused:
        load_access(path)
    assert WRITER not in str(refused.value)
