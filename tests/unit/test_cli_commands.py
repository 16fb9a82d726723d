"""The CLI imports only the module that registers the command asked for
(cli/commands.py's COMMAND_HOMES); this keeps that table true to what each module
registers."""

from __future__ import annotations

import argparse
import importlib

import pytest

from tomato.cli import commands, engine


def _registered_by(module: str) -> set[str]:
    parser = argparse.ArgumentParser()
    real = parser.add_subparsers(dest="command")
    sub = engine._OnlyCommand(real, None)
    common = argparse.ArgumentParser(add_help=False)
    importlib.import_module(module).register(sub, common)
    return set(real.choices)


@pytest.mark.parametrize("module", commands.COMMAND_MODULES)
def test_every_command_has_its_home(module: str) -> None:
    registered = _registered_by(module)
    listed = {word for word, home in commands.COMMAND_HOMES.items() if home == module}
    assert registered == listed


def test_every_home_is_a_command_module() -> None:
    assert set(commands.COMMAND_HOMES.values()) == set(commands.COMMAND_MODULES)


def test_a_command_builds_only_its_own_parser() -> None:
    parser = engine.build_parser(["ps"])
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == {"ps"}


def test_an_unknown_command_is_named_as_docker_names_it(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        engine.main(["no-such-command"])
    assert exit_info.value.code == 1  # docker's code for an unknown command
    err = capsys.readouterr().err
    assert err.startswith("tomato: unknown command: tomato no-such-command\n")
