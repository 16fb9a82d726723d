"""`tomato`'s usage errors are docker's (cli/usage.py): no abbreviated flags, one
message naming the flag or the count, the command's usage line, a pointer to
--help; exit 125 for a flag, 1 for the arguments or an unknown command.  The
wording is docker 28's (checked against /usr/local/bin/docker, which prints
these without a daemon)."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from tomato.cli import engine, usage


def _fail(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        engine.main(list(argv))
    captured = capsys.readouterr()
    assert captured.out == ""
    return int(exit_info.value.code or 0), captured.err


def _parse(*argv: str) -> argparse.Namespace:
    return engine.build_parser(list(argv)).parse_args(list(argv))


RUN_USAGE = "Usage:  tomato run [OPTIONS] IMAGE [COMMAND] [ARG...]"


@pytest.mark.parametrize(("argv", "first"), [
    (["run", "--pids-limit", "abc", "busybox"],
     'invalid argument "abc" for "--pids-limit" flag: strconv.ParseInt: parsing "abc": '
     "invalid syntax"),
    (["run", "--pids-limit=abc", "busybox"],
     'invalid argument "abc" for "--pids-limit" flag: strconv.ParseInt: parsing "abc": '
     "invalid syntax"),
    (["run", "--pids-limit", "99999999999999999999", "busybox"],
     'invalid argument "99999999999999999999" for "--pids-limit" flag: strconv.ParseInt: '
     'parsing "99999999999999999999": value out of range'),
    (["run", "-c", "1.5", "busybox"],
     'invalid argument "1.5" for "-c, --cpu-shares" flag: strconv.ParseInt: parsing "1.5": '
     "invalid syntax"),
    (["run", "--pid", "host", "busybox"], "unknown flag: --pid"),
    (["run", "--pids-lim", "3", "busybox"], "unknown flag: --pids-lim"),
    (["run", "--pids-lim=3", "busybox"], "unknown flag: --pids-lim"),  # 3.11's '=' hole
    (["run", "--foo", "busybox"], "unknown flag: --foo"),
    (["run", "-dz", "busybox"], "unknown shorthand flag: 'z' in -z"),
    (["run", "-dzq", "busybox"], "unknown shorthand flag: 'z' in -zq"),
    (["run", "--pids-limit"], "flag needs an argument: --pids-limit"),
    (["run", "-de"], "flag needs an argument: 'e' in -e"),
    (["run", "--rm=maybe", "busybox"],
     'invalid argument "maybe" for "--rm" flag: strconv.ParseBool: parsing "maybe": '
     "invalid syntax"),
    (["run", "-it=x", "busybox"],
     'invalid argument "x" for "-t, --tty" flag: strconv.ParseBool: parsing "x": '
     "invalid syntax"),
])
def test_a_bad_flag_of_run(capsys: pytest.CaptureFixture[str], argv: list[str],
                           first: str) -> None:
    code, err = _fail(capsys, *argv)
    assert code == 125
    assert err == (f"tomato: {first}\n\n{RUN_USAGE}\n\n"
                   "Run 'tomato run --help' for more information\n")


@pytest.mark.parametrize(("argv", "first", "usage_line"), [
    (["ps", "--bogus"], "unknown flag: --bogus", "tomato ps [OPTIONS]"),
    (["ps", "-z"], "unknown shorthand flag: 'z' in -z", "tomato ps [OPTIONS]"),
    (["ps", "-n", "abc"],
     'invalid argument "abc" for "-n, --last" flag: strconv.ParseInt: parsing "abc": '
     "invalid syntax", "tomato ps [OPTIONS]"),
    (["ps", "-f"], "flag needs an argument: 'f' in -f", "tomato ps [OPTIONS]"),
    (["ps", "--format"], "flag needs an argument: --format", "tomato ps [OPTIONS]"),
    (["ps", "-a=foo"],
     'invalid argument "foo" for "-a, --all" flag: strconv.ParseBool: parsing "foo": '
     "invalid syntax", "tomato ps [OPTIONS]"),
    (["stop", "-t", "x", "c"],
     'invalid argument "x" for "-t, --time" flag: strconv.ParseInt: parsing "x": '
     "invalid syntax", "tomato stop [OPTIONS] CONTAINER [CONTAINER...]"),
    (["--bogus", "ps"], "unknown flag: --bogus", "tomato [OPTIONS] COMMAND"),
    (["--ro", "/x", "ps"], "unknown flag: --ro", "tomato [OPTIONS] COMMAND"),
    (["image", "ls", "--bogus"], "unknown flag: --bogus",
     "tomato image ls [OPTIONS] [REFERENCE]"),
    (["save", "--format", "tarball", "x"],
     'invalid argument "tarball" for "--format" flag: must be one of docker-archive, '
     "oci-archive, oci", "tomato save [OPTIONS] IMAGE [IMAGE...]"),
])
def test_a_bad_flag_of_other_commands(capsys: pytest.CaptureFixture[str], argv: list[str],
                                      first: str, usage_line: str) -> None:
    code, err = _fail(capsys, *argv)
    prog = usage_line.split(" [")[0]
    assert code == 125
    assert err == (f"tomato: {first}\n\nUsage:  {usage_line}\n\n"
                   f"Run '{prog} --help' for more information\n")


@pytest.mark.parametrize(("argv", "first", "usage_line"), [
    (["run"], "'tomato run' requires at least 1 argument", RUN_USAGE[8:]),
    (["run", "-d", "--rm"], "'tomato run' requires at least 1 argument", RUN_USAGE[8:]),
    (["rm"], "'tomato rm' requires at least 1 argument",
     "tomato rm [OPTIONS] CONTAINER [CONTAINER...]"),
    (["logs"], "'tomato logs' requires 1 argument", "tomato logs [OPTIONS] CONTAINER"),
    (["logs", "a", "b"], "'tomato logs' requires 1 argument", "tomato logs [OPTIONS] CONTAINER"),
    (["tag", "a"], "'tomato tag' requires 2 arguments", "tomato tag SOURCE TARGET"),
    (["ps", "a"], "'tomato ps' accepts no arguments", "tomato ps [OPTIONS]"),
    (["images", "a", "b"], "'tomato images' requires at most 1 argument",
     "tomato images [OPTIONS] [REFERENCE]"),
    (["volume", "rm"], "'tomato volume rm' requires at least 1 argument",
     "tomato volume rm [OPTIONS] NAMES [NAMES...]"),
])
def test_the_wrong_number_of_arguments(capsys: pytest.CaptureFixture[str], argv: list[str],
                                       first: str, usage_line: str) -> None:
    code, err = _fail(capsys, *argv)
    prog = first.split("'")[1]
    assert code == 1
    assert err == (f"tomato: {first}\n\nUsage:  {usage_line}\n\n"
                   f"Run '{prog} --help' for more information\n")


def test_an_unknown_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _fail(capsys, "rum", "busybox")
    assert (code, err) == (1, "tomato: unknown command: tomato rum\n\n"
                              "Run 'tomato --help' for more information\n")
    code, err = _fail(capsys, "--root", "/nonexistent", "container", "lss")
    assert (code, err) == (1, "tomato: unknown command: tomato container lss\n\n"
                              "Usage:  tomato container COMMAND\n\n"
                              "Run 'tomato container --help' for more information\n")


def test_a_group_without_its_command_prints_its_help(
        capsys: pytest.CaptureFixture[str]) -> None:
    for argv in ([], ["container"], ["network"], ["image"]):
        with pytest.raises(SystemExit) as exit_info:
            engine.main(argv)
        out = capsys.readouterr().out
        assert exit_info.value.code == 0
        assert out.startswith(f"Usage:  {' '.join(['tomato', *argv])} ")


# -- values docker accepts --------------------------------------------------------------
def test_booleans_take_a_value_after_an_equals_sign() -> None:
    args = _parse("run", "--rm=false", "-d=true", "--privileged=True", "-it=false",
                  "busybox", "sh", "--rm=x")
    assert (args.rm, args.detach, args.privileged, args.interactive, args.tty) == \
        (False, True, True, True, False)
    assert args.command == ["sh", "--rm=x"]  # the container's words are its own
    assert _parse("run", "--rm=false", "--rm", "busybox").rm is True  # the last one wins
    assert _parse("run", "--rm", "--rm=0", "busybox").rm is False
    assert _parse("history", "--human=false", "x").human is False
    assert _parse("ps", "-a=1", "-q").all is True


def test_a_value_that_looks_like_a_flag_is_the_flags() -> None:
    args = _parse("run", "-e", "--weird", "--entrypoint", "-x", "-w=/w", "busybox")
    assert (args.env, args.entrypoint, args.workdir) == (["--weird"], "-x", "/w")
    assert _parse("run", "--cpu-shares", "-1", "busybox").cpu_shares == -1


def test_integers_are_gos() -> None:
    assert _parse("run", "--pids-limit", "0x10", "busybox").pids_limit == 16
    assert _parse("run", "--pids-limit", "010", "busybox").pids_limit == 8
    assert _parse("run", "--pids-limit", "-1", "busybox").pids_limit == -1
    assert _parse("run", "--pids-limit", "1_000", "busybox").pids_limit == 1000
    for bad in (" 1", "١", "", "1e3", "0x", "9223372036854775808"):
        with pytest.raises(usage.FlagValueError):
            usage.go_int(bad)
    assert usage.go_int("-9223372036854775808") == -(1 << 63)


# -- every parser -------------------------------------------------------------------------
def _parsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
             ) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            seen: set[int] = set()
            for name, sub in action.choices.items():
                if id(sub) not in seen:
                    seen.add(id(sub))
                    yield from _parsers(sub, (*path, name))


def _all_parsers() -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    return list(_parsers(engine.build_parser(None)))


def test_every_parser_has_dockers_manners() -> None:
    found = _all_parsers()
    assert len(found) > 60
    for path, parser in found:
        assert isinstance(parser, usage.DockerParser), path
        assert parser.allow_abbrev is False, path


def test_no_command_takes_an_abbreviated_flag(capsys: pytest.CaptureFixture[str]) -> None:
    tried = 0
    for path, parser in _all_parsers():
        longs = {o for a in parser._actions for o in a.option_strings if o.startswith("--")}
        for option in sorted(longs):
            short = option[:-1]
            if short in longs or len(short) < 3:
                continue
            for form in ([short, "x"], [f"{short}=x"]):
                with pytest.raises(SystemExit) as exit_info:
                    parser.parse_args(form + ["a", "b"])
                err = capsys.readouterr().err
                assert exit_info.value.code == 125, (path, form, err)
                assert err.startswith(f"tomato: unknown flag: {short}\n"), (path, form, err)
                tried += 1
    assert tried > 200


def test_every_command_names_an_unknown_flag(capsys: pytest.CaptureFixture[str]) -> None:
    for path, parser in _all_parsers():
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args(["--no-such-flag"])
        err = capsys.readouterr().err
        prog = " ".join(["tomato", *path])
        assert exit_info.value.code == 125, (path, err)
        assert err.startswith("tomato: unknown flag: --no-such-flag\n\nUsage:  "), (path, err)
        assert err.endswith(f"\nRun '{parser.prog} --help' for more information\n"), (path, err)
        assert parser.prog.startswith(prog.rsplit(" ", 1)[0]), (path, parser.prog)
