"""The Ray head pod's token (tandem/gateway/ray_token.py): made once per pod, whole, owner-only."""

from __future__ import annotations

import stat

from tandem.gateway.ray_token import ensure_token, main


def test_a_fresh_token_is_long_random_owner_read_only_and_has_no_newline(tmp_path):
    path = tmp_path / "token"
    assert ensure_token(path) is True
    token = path.read_text()
    assert len(token) >= 64 and token.strip() == token and "\n" not in token
    assert stat.S_IMODE(path.stat().st_mode) == 0o400
    assert [p.name for p in tmp_path.iterdir()] == ["token"]  # no staging file left
    other = tmp_path / "other"
    ensure_token(other)
    assert other.read_text() != token


def test_a_token_already_there_is_kept(tmp_path):
    """An init container run again (sandbox recreated) must not part the head from the gateway."""
    path = tmp_path / "token"
    ensure_token(path)
    first = path.read_text()
    assert ensure_token(path) is False
    assert path.read_text() == first


def test_an_empty_file_is_replaced(tmp_path):
    path = tmp_path / "token"
    path.write_text("")
    assert ensure_token(path) is True
    assert len(path.read_text()) >= 64


def test_main_takes_exactly_one_path(tmp_path, capsys):
    assert main([]) == 2
    assert main([str(tmp_path / "token")]) == 0
    assert "written" in capsys.readouterr().out
    assert main([str(tmp_path / "token")]) == 0
    assert "kept" in capsys.readouterr().out
