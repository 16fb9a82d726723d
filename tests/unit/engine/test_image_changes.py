"""The one `--change` parser (engine/image_changes.py) both edges use."""

from __future__ import annotations

import pytest

from tomato.engine.image_changes import merge, parse
from tomato.errors import InvalidArgument


def test_every_instruction_docker_takes() -> None:
    got = parse(["EXPOSE 80", 'cmd ["a", "b"]', 'ENTRYPOINT /bin/run --x',
                 'ENV A=1 B="two words"', "ENV C  three  words", "LABEL a=b c='d e'",
                 'VOLUME ["/data"]', "VOLUME /x /y", "EXPOSE 53/udp 8000-8001",
                 "USER nobody\nWORKDIR /tmp", "STOPSIGNAL SIGINT", "ONBUILD RUN true"])
    assert got == {
        "ExposedPorts": {"80/tcp": {}, "53/udp": {}, "8000/tcp": {}, "8001/tcp": {}},
        "Cmd": ["a", "b"], "Entrypoint": ["/bin/sh", "-c", "/bin/run --x"],
        "Env": ["A=1", "B=two words", "C=three  words"], "Labels": {"a": "b", "c": "d e"},
        "Volumes": {"/data": {}, "/x": {}, "/y": {}}, "User": "nobody", "WorkingDir": "/tmp",
        "StopSignal": "SIGINT", "OnBuild": ["RUN true"]}


@pytest.mark.parametrize("text", ["[oops", '["a", 1]', '{"a": 1}', "[]x"])
def test_what_is_not_a_json_array_of_strings_is_shell_form(text: str) -> None:
    assert parse([f"CMD {text}"]) == {"Cmd": ["/bin/sh", "-c", text]}


def test_continuations_comments_and_repeats() -> None:
    assert parse(["# a comment\n\nENV A=1 \\\n B=2", "ENV A=3"]) == {"Env": ["A=3", "B=2"]}


@pytest.mark.parametrize(("line", "message"), [
    ("FROM busybox", "FROM is not a valid change command"),
    ("RUN true", "RUN is not a valid change command"),
    ("EXPOSE http", "invalid containerPort: http"),
    ("EXPOSE 80/foo", "invalid proto: foo"),
    ("EXPOSE 0", "invalid port range: 0"),
    ("ENV", "ENV requires at least one argument"),
    ("ENV A", "ENV must have two arguments"),
    ("ENV =x", "ENV: '=x' is not a name=value pair"),
    ("LABEL a='b", "unmatched quote"),
    ("USER", "USER requires exactly one argument"),
])
def test_bad_lines_are_invalid_arguments(line: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        parse([line])


def test_merge_lays_changes_over_the_base_as_a_dockerfile() -> None:
    base = {"Env": ["PATH=/bin", "A=0"], "Labels": {"x": "1"}, "ExposedPorts": {"22/tcp": {}},
            "Cmd": ["sh"], "OnBuild": ["RUN a"]}
    got = merge(base, parse(["ENV A=1 B=2", "LABEL y=2", "EXPOSE 80", "CMD top",
                             "ONBUILD RUN b"]))
    assert got == {"Env": ["PATH=/bin", "A=1", "B=2"], "Labels": {"x": "1", "y": "2"},
                   "ExposedPorts": {"22/tcp": {}, "80/tcp": {}},
                   "Cmd": ["/bin/sh", "-c", "top"], "OnBuild": ["RUN a", "RUN b"]}
    assert merge(base, {}) == {}
