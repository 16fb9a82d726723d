"""The runtime CLI's flag parser (tomato.cli.flags) reads argv as runc's urfave/cli
over Go's flag package does, and fails with Go's words."""

from __future__ import annotations

import pytest

from tomato.cli.flags import BOOL, MULTI, OPTIONAL, VALUE, Flag, parse, usage
from tomato.errors import InvalidArgument

FLAGS = (
    Flag("bundle", VALUE, aliases=("b",), default=".", help="the bundle"),
    Flag("detach", BOOL, aliases=("d",)),
    Flag("env", MULTI, aliases=("e",)),
    Flag("explain", OPTIONAL),
)


def test_value_flags_in_every_spelling() -> None:
    for argv in (["--bundle", "/b"], ["--bundle=/b"], ["-bundle", "/b"], ["-bundle=/b"],
                 ["-b", "/b"], ["-b=/b"]):
        assert parse([*argv, "id"], FLAGS).str("bundle") == "/b", argv


def test_defaults_and_positionals() -> None:
    p = parse(["id", "--detach"], FLAGS)
    assert p.str("bundle") == "." and not p.bool("detach")
    assert p.args == ["id", "--detach"]  # flags stop at the first positional, as runc's
    p = parse(["id", "--detach"], FLAGS, stop_at_positional=False)
    assert p.bool("detach") and p.args == ["id"]
    assert parse(["--", "-d"], FLAGS).args == ["-d"]
    assert parse(["-", "x"], FLAGS).args == ["-", "x"]


def test_booleans_as_go_parses_them() -> None:
    for text in ("1", "t", "T", "TRUE", "true", "True"):
        assert parse([f"--detach={text}"], FLAGS).bool("detach") is True
    for text in ("0", "f", "F", "FALSE", "false", "False"):
        assert parse([f"-d={text}"], FLAGS).bool("detach") is False
    for text in ("yes", "no", "", "tRuE", "2"):
        with pytest.raises(InvalidArgument,
                           match=f'invalid boolean value "{text}" for -detach: parse error'):
            parse([f"--detach={text}"], FLAGS)


def test_repeatable_and_optional_values() -> None:
    p = parse(["-e", "A=1", "--env=B=2", "--explain"], FLAGS)
    assert p.list("env") == ["A=1", "B=2"] and p.get("explain") is True
    assert parse(["--explain=full"], FLAGS).get("explain") == "full"
    p = parse(["--explain", "id"], FLAGS)  # never the next word
    assert p.get("explain") is True and p.args == ["id"]
    assert parse([], FLAGS).list("env") == []


@pytest.mark.parametrize(("argv", "message"), [
    (["--nope"], "flag provided but not defined: -nope"),
    (["-nope=1"], "flag provided but not defined: -nope"),
    (["--bundle"], "flag needs an argument: -bundle"),
    (["-b"], "flag needs an argument: -b"),
    (["---bundle", "x"], "bad flag syntax: ---bundle"),
    (["-=x"], "bad flag syntax: -=x"),
])
def test_errors_are_gos(argv: list[str], message: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        parse(argv, FLAGS)
    assert str(err.value) == message


def test_usage_lists_every_flag() -> None:
    text = usage(FLAGS)
    assert "--bundle, -b value\tthe bundle" in text
    assert "--detach, -d\t" in text and "--explain[=value]" in text
