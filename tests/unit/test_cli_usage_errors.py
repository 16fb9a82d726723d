"""`tomato`'s usage errors are docker's (cli/usage.py): no abbreviated flags, one
message naming the flag or the count, the command's usage line, a pointer to
--help; exit 125 for a flag, 1 for the arguments or an unknown command.  The
wording is docker 28's (checked against /usr/local/bin/docker, which prints
these without a daemon)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tomato.cli import engine, usage
from tomato.errors import InvalidArgument


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
    (["run", "--pi", "host", "busybox"], "unknown flag: --pi"),  # --pid and --pids-limit
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
    (["exec", "c"], "'tomato exec' requires at least 2 arguments",
     "tomato exec [OPTIONS] CONTAINER COMMAND [ARG...]"),
    (["container", "exec", "-it", "c"], "'tomato container exec' requires at least 2 "
     "arguments", "tomato container exec [OPTIONS] CONTAINER COMMAND [ARG...]"),
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
        # ("--explain=full" is a value of --explain spelled as an option string, not a flag)
        longs = {o for a in parser._actions for o in a.option_strings
                 if o.startswith("--") and "=" not in o}
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


# -- values: docker's client-side and daemon-side checks, in its words --------------------
def _options(*argv: str) -> Any:
    """What `tomato run` checks before anything is made: its flags (cli/run_options.py)
    and the engine's checks of them together (engine/options.py, as moby's daemon)."""
    from tomato.cli.run_options import build_options
    from tomato.engine.options import validate_resources

    opts = build_options(_parse("run", *argv, "busybox"))
    validate_resources(opts)
    return opts


NCPU = os.cpu_count() or 1
CPU_RANGE = f"Range of CPUs is from 0.01 to {NCPU}.00, as there are only {NCPU} CPUs available"


@pytest.mark.parametrize(("argv", "message"), [
    (["-m", "1k"], "Minimum memory limit allowed is 6MB"),
    (["-m", "6291455b"], "Minimum memory limit allowed is 6MB"),
    (["--memory-reservation", "1k"], "Minimum memory reservation allowed is 6MB"),
    (["-m", "10m", "--memory-reservation", "20m"],
     "Minimum memory limit can not be less than memory reservation limit, see usage"),
    (["-m", "20m", "--memory-swap", "10m"],
     "Minimum memoryswap limit should be larger than memory limit, see usage"),
    (["--memory-swap", "10m"],
     "You should always set the Memory limit when using Memoryswap limit, see usage"),
    (["--cpus", str(NCPU + 1)], CPU_RANGE),
    (["--cpus", "-1"], CPU_RANGE),
    (["--cpus", "abc"], 'invalid argument "abc" for "--cpus" flag: failed to parse abc as a '
                        "rational number"),
    (["--cpus", "0.0000000001"], 'invalid argument "0.0000000001" for "--cpus" flag: value '
                                 "is too precise"),
    (["--restart", "sometimes"], "invalid restart policy: unknown policy 'sometimes'; use one "
                                 "of 'no', 'always', 'on-failure', or 'unless-stopped'"),
    (["--restart", "always:3"], "invalid restart policy: maximum retry count can only be used "
                                "with 'on-failure'"),
    (["--restart", "on-failure:x"], "invalid restart policy format: maximum retry count must "
                                    "be an integer"),
    (["--restart", "on-failure:-1"], "invalid restart policy: maximum retry count cannot be "
                                     "negative"),
    (["--restart", ":3"], "invalid restart policy format: no policy provided before colon"),
    (["-e", "=x"], 'invalid argument "=x" for "-e, --env" flag: invalid environment '
                   "variable: =x"),
    (["--ulimit", "nofile=a"], 'invalid argument "nofile=a" for "--ulimit" flag: '
                               'strconv.ParseInt: parsing "a": invalid syntax'),
    (["--ulimit", "nofile"], 'invalid argument "nofile" for "--ulimit" flag: invalid ulimit '
                             "argument: nofile"),
    (["--ulimit", "fun=1"], 'invalid argument "fun=1" for "--ulimit" flag: invalid ulimit '
                            "type: fun"),
    (["--ulimit", "nofile=2:1"], 'invalid argument "nofile=2:1" for "--ulimit" flag: ulimit '
                                 "soft limit must be less than or equal to hard limit: 2 > 1"),
    (["--ulimit", "nofile=1:2:3"], 'invalid argument "nofile=1:2:3" for "--ulimit" flag: too '
                                   "many limit value arguments - 1:2:3, can only have up to "
                                   "two, `soft[:hard]`"),
    (["-v", ""], "invalid empty volume spec"),
    (["-v", "/x:"], "invalid spec: /x:: empty section between colons"),
    (["-v", "/a:/b:ro:x"], "invalid spec: /a:/b:ro:x: too many colons"),
    (["-v", "/x:/"], "invalid specification: destination can't be '/'"),
    (["--tmpfs", "rel"], "invalid mount path: 'rel' mount path must be absolute"),
    (["--stop-signal", "SIGNOPE"], "Invalid signal: SIGNOPE"),
    (["--sysctl", "kernel.hostname=x"], 'invalid argument "kernel.hostname=x" for "--sysctl" '
                                        "flag: sysctl 'kernel.hostname=x' is not allowed"),
    (["--add-host", "foo"], 'invalid argument "foo" for "--add-host" flag: bad format for '
                            'add-host: "foo"'),
    (["--dns", "abc"], 'invalid argument "abc" for "--dns" flag: IP address is not correctly '
                       "formatted: abc"),
    (["--mount", "type=bind"], 'invalid argument "type=bind" for "--mount" flag: target is '
                               "required"),
    (["--env-file", "/nonexistent/env"], "open /nonexistent/env: no such file or directory"),
])
def test_a_bad_value_is_refused_in_dockers_words(argv: list[str], message: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        _options(*argv)
    assert str(refused.value) == message


def test_values_docker_takes() -> None:
    opts = _options("--cpus", "0", "-m", "6m", "--memory-swap", "-1", "--pids-limit", "-1",
                    "--restart", "on-failure:", "--stop-signal", "rtmin+3", "--ulimit",
                    "nofile=1:-1", "--sysctl", "net.ipv4.ip_forward=1")
    assert (opts.cpus, opts.memory, opts.memory_swap, opts.pids_limit) == (0, 6 << 20, -1, 0)
    assert (opts.restart, opts.restart_max) == ("on-failure", 0)


def test_env_as_docker_reads_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FROM_CALLER", "yes")
    monkeypatch.delenv("NOT_SET_HERE", raising=False)
    env_file = tmp_path / "env"
    env_file.write_text("\ufeff# comment\n\n  A=1  \nFROM_CALLER\nNOT_SET_HERE\nB==x\n")
    opts = _options("--env-file", str(env_file), "-e", "FROM_CALLER", "-e", "C=", "-e",
                    "NOT_SET_HERE")
    assert opts.env == ["A=1  ", "FROM_CALLER=yes", "NOT_SET_HERE", "B==x", "FROM_CALLER=yes",
                        "C=", "NOT_SET_HERE"]
    env_file.write_text("MY VAR=1\n")
    with pytest.raises(InvalidArgument, match="variable 'MY VAR' contains whitespaces"):
        _options("--env-file", str(env_file))
