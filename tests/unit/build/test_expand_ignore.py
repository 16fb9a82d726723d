"""Docker's variable expansion (BuildKit's shell lexer) and .dockerignore matching
(moby/patternmatcher), checked against what those implementations answer."""

from __future__ import annotations

import pytest

from tomato.build.expand import ExpansionError, word, words
from tomato.build.ignore import Matcher, is_forbidden, matcher_from, read_patterns
from tomato.build.imageconfig import parse_ports, run_history
from tomato.errors import InvalidArgument

ENV = {"A": "1", "E": "", "S": "a b", "P": "/usr/local/bin"}


@pytest.mark.parametrize("text, expected", [
    ("$A", "1"), ("${A}", "1"), ("x${A}y", "x1y"), ("$NOPE", ""), ("$", "$"),
    ("${NOPE:-dflt}", "dflt"), ("${E:-dflt}", "dflt"), ("${E-dflt}", ""),
    ("${NOPE-dflt}", "dflt"), ("${A:-dflt}", "1"),
    ("${A:+alt}", "alt"), ("${E:+alt}", ""), ("${E+alt}", "alt"), ("${NOPE+alt}", ""),
    ("${NOPE:-${A}x}", "1x"),
    ("'$A'", "$A"), ('"$A"', "1"), ('"a\\"b"', 'a"b'), ('"a\\nb"', "a\\nb"),
    ("\\$A", "$A"), ("a\\ b", "a b"), ("'it''s'", "its"),
    ("${P#*/}", "usr/local/bin"), ("${P##*/}", "bin"), ("${P%/*}", "/usr/local"),
    ("${P%%/l*}", "/usr"),
])
def test_word(text: str, expected: str) -> None:
    assert word(text, ENV) == expected


def test_backtick_escape() -> None:
    assert word("a`$A", ENV, "`") == "a$A"
    assert word("c:\\dir", ENV, "`") == "c:\\dir"


def test_words_split_unquoted_expansions() -> None:
    assert words("$S 'c d' \"$S\"", ENV) == ["a", "b", "c d", "a b"]
    assert words("80 443/udp", ENV) == ["80", "443/udp"]


@pytest.mark.parametrize("text, message", [
    ("${NOPE:?must be set}", "NOPE: must be set"), ("${NOPE?}", "is not allowed to be unset"),
    ("${A", "missing '}'"), ("${}", "bad substitution"), ("${A:=x}", "unsupported modifier"),
    ("'open", "matching single-quote"), ('"open', "matching double-quote"),
])
def test_expansion_errors(text: str, message: str) -> None:
    with pytest.raises(ExpansionError, match=message.replace("(", "\\(").replace("?", "\\?")):
        word(text, ENV)


def test_dockerignore_rules() -> None:
    m = matcher_from("# comment\n*.md\n!README.md\nbuild/\n**/*.pyc\n/abs/x\n a/**/b \n"
                     "temp?\n")
    cases = {"x.md": True, "README.md": False, "sub/x.md": False, "build": True,
             "build/y/z": True, "q/w.pyc": True, "w.pyc": True, "abs/x/y": True, "a/b": True,
             "a/1/2/b": True, "a/b/c": True, "c": False, "temp1": True, "temp12": False}
    assert {p: m.excluded(p) for p in cases} == cases


def test_dockerignore_last_match_wins_and_exceptions_inside_excluded_dirs() -> None:
    m = matcher_from("docs\n!docs/keep.txt\n")
    assert m.excluded("docs/a") and not m.excluded("docs/keep.txt")
    assert m.has_exclusions
    m = matcher_from("!a\n*\n")
    assert m.excluded("a")
    assert read_patterns("\ufeff./x/../y/\n!/z\n\n") == ["y", "!z"]
    with pytest.raises(InvalidArgument, match="illegal exclusion"):
        Matcher(["!"])
    assert not matcher_from("")


def test_forbidden_paths() -> None:
    assert is_forbidden("../x") and is_forbidden("a/../../x") and is_forbidden("..")
    assert not is_forbidden("a/../x") and not is_forbidden("./x")


def test_ports_and_history_lines() -> None:
    assert parse_ports(["80", "53/UDP", "8000-8002/tcp"]) == \
        ["80/tcp", "53/udp", "8000/tcp", "8001/tcp", "8002/tcp"]
    with pytest.raises(ValueError):
        parse_ports(["http"])
    assert run_history(["/bin/sh", "-c", "make"], [("V", "2"), ("A", "1")]) == \
        "|2 A=1 V=2 /bin/sh -c make"
