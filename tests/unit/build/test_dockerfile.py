"""The Dockerfile parser, the instruction checks and the stage graph: pure logic, as
BuildKit's parser reads the same text."""

from __future__ import annotations

import pytest

from tomato.build.dockerfile import DockerfileError, parse, split_words
from tomato.build.instructions import (
    Arg,
    Command,
    Copy,
    From,
    Healthcheck,
    KeyValues,
    Onbuild,
    parse_all,
    parse_duration,
    parse_instruction,
)
from tomato.build.stages import plan


def test_directives_continuations_comments_and_blank_lines() -> None:
    df = parse("# syntax=docker/dockerfile:1\n# escape=\\\n\nFROM busybox\n"
               "RUN echo a \\\n  # a comment inside\n    b \\\n\n  c\n# trailing comment\n"
               "run   lower case\n")
    assert [line.keyword for line in df.lines] == ["FROM", "RUN", "RUN"]
    assert df.lines[1].rest == "echo a     b   c"
    assert df.lines[1].lineno == 5 and df.lines[2].lineno == 11
    assert df.syntax == "docker/dockerfile:1"
    assert any("syntax directive" in w for w in df.warnings)
    assert any("empty continuation" in w for w in df.warnings)


def test_escape_directive_backtick_and_late_directives_are_comments() -> None:
    df = parse("# escape=`\nFROM busybox\nRUN echo a `\n  b\n# escape=\\\nRUN c:\\path\n")
    assert df.escape == "`"
    assert df.lines[1].rest == "echo a   b"
    assert df.lines[2].rest == "c:\\path"
    with pytest.raises(DockerfileError, match="invalid escape token"):
        parse("# escape=x\nFROM a\n")
    with pytest.raises(DockerfileError, match="only one escape"):
        parse("# escape=`\n# escape=\\\nFROM a\n")


def test_heredocs() -> None:
    df = parse("FROM a\nRUN <<EOF\necho 1\n  echo 2\nEOF\nCOPY <<-\"X\" <<Y /dst/\n\tone $A\nX\n"
               "two\nY\nRUN x\n")
    run, copy = df.lines[1], df.lines[2]
    assert run.heredocs[0].name == "EOF" and run.heredocs[0].content == "echo 1\n  echo 2\n"
    assert run.heredocs[0].expand
    first, second = copy.heredocs
    assert (first.name, first.content, first.expand, first.strip_tabs) == \
        ("X", "one $A\n", False, True)
    assert (second.name, second.content) == ("Y", "two\n")
    assert df.lines[3].rest == "x" and df.lines[3].lineno == 11
    with pytest.raises(DockerfileError, match="Dockerfile:2: unterminated heredoc"):
        parse("FROM a\nRUN <<EOF\necho\n")


def test_flags_and_words() -> None:
    df = parse('FROM a\nCOPY --from=build --chown="1:2" src dst\n')
    assert df.lines[1].flags == ("--from=build", "--chown=1:2")
    assert df.lines[1].rest == "src dst"
    assert split_words('a="b c" d=\'e f\' g\\ h') == ['a="b c"', "d='e f'", "g\\ h"]


def test_bad_text() -> None:
    with pytest.raises(DockerfileError, match="no instructions"):
        parse("# only a comment\n\n")
    with pytest.raises(DockerfileError, match="not UTF-8"):
        parse(b"FROM a\nRUN \xff\xfe\n")
    with pytest.raises(DockerfileError, match="NUL"):
        parse("FROM a\0\n")


def _one(text: str):  # type: ignore[no-untyped-def]
    return parse_instruction(parse("FROM a\n" + text).lines[1])


def test_instructions_are_typed_and_checked() -> None:
    run = _one('RUN ["echo", "hi"]')
    assert isinstance(run, Command) and run.exec_form and run.args == ("echo", "hi")
    shell = _one("RUN [not json")
    assert isinstance(shell, Command) and not shell.exec_form and shell.args == ("[not json",)
    env = _one('ENV A=1 B="two words"')
    assert isinstance(env, KeyValues) and env.pairs == (("A", "1"), ("B", '"two words"'))
    legacy = _one("ENV KEY a value with spaces")
    assert isinstance(legacy, KeyValues) and legacy.pairs == (("KEY", "a value with spaces"),)
    arg = _one("ARG X Y=2")
    assert isinstance(arg, Arg) and arg.pairs == (("X", None), ("Y", "2"))
    copy = _one('COPY --chmod=755 ["a b", "c", "/d/"]')
    assert isinstance(copy, Copy) and copy.sources == ("a b", "c") and copy.chmod == "755"
    hc = _one("HEALTHCHECK --interval=1m30s --retries=3 CMD curl -f http://x/")
    assert isinstance(hc, Healthcheck) and hc.test == ("CMD-SHELL", "curl -f http://x/")
    assert isinstance(_one("HEALTHCHECK NONE"), Healthcheck)
    ob = _one("ONBUILD RUN make")
    assert isinstance(ob, Onbuild) and ob.trigger == "RUN make"
    frm = parse_instruction(parse("FROM --platform=linux/amd64 img AS Builder\n").lines[0])
    assert isinstance(frm, From) and frm.alias == "builder" and frm.platform == "linux/amd64"
    assert parse_duration("1m30s") == 90 * 10**9 and parse_duration("500ms") == 5 * 10**8


@pytest.mark.parametrize("text, message", [
    ("RUNN echo", "Dockerfile:2: unknown instruction: RUNN"),
    ("COPY --form=x a b", "Dockerfile:2: unknown flag: form"),
    ("COPY --from a b", "missing a value on flag: from"),
    ("COPY onlyone", "COPY requires at least two arguments"),
    ("ENV", "ENV must have two arguments"),
    ("ENV A=1 B", "can't find = in 'B'"),
    ("SHELL /bin/bash -c", "SHELL requires the arguments to be in JSON form"),
    ("HEALTHCHECK --interval=abc CMD x", "invalid --interval duration"),
    ("HEALTHCHECK WHAT x", 'Unknown type "WHAT"'),
    ("ONBUILD ONBUILD RUN x", "isn't allowed as an ONBUILD trigger"),
    ("ONBUILD FROM x", "isn't allowed as an ONBUILD trigger"),
    ("RUN --mount=type=cache,target=/x make", "RUN --mount is not supported"),
    ("COPY --chmod=u+x a b", "invalid chmod parameter"),
    ("USER a b", "USER requires exactly one argument"),
    ("ENV --x=1 A=1", "ENV takes no flags"),
])
def test_bad_instructions_name_the_line(text: str, message: str) -> None:
    with pytest.raises(DockerfileError) as err:
        _one(text)
    assert message in str(err.value)
    assert str(err.value).startswith("Dockerfile:2: ")


def test_only_args_before_from() -> None:
    with pytest.raises(DockerfileError, match="Dockerfile:2: no build stage in current context"):
        parse_all(parse("ARG A\nENV B=1\nFROM x\n"))
    with pytest.raises(DockerfileError, match="no FROM"):
        parse_all(parse("ARG A\n"))


def test_stage_graph_builds_only_what_the_target_needs() -> None:
    df = parse("ARG BASE=busybox\nFROM ${BASE} AS one\nRUN a\nFROM scratch AS unused\n"
               "COPY x /\nFROM one AS two\nCOPY --from=0 /a /b\nFROM busybox\n"
               "COPY --from=two /c /d\n")
    p = plan(df)
    assert p.needed == [0, 2, 3] and p.target == 3
    assert p.stages[0].base == "busybox" and p.stages[2].base_stage == 0
    assert plan(df, {"BASE": "alpine"}).stages[0].base == "alpine"
    assert plan(df, target="unused").needed == [1]
    with pytest.raises(DockerfileError, match="target stage 'nope' could not be found"):
        plan(df, target="nope")


def test_stage_references_must_point_back() -> None:
    with pytest.raises(DockerfileError, match="duplicate name"):
        plan(parse("FROM a AS x\nFROM b AS x\n"))
    with pytest.raises(DockerfileError, match="only copy from an earlier stage"):
        plan(parse("FROM a\nCOPY --from=5 /x /y\n"))


def test_unused_build_args() -> None:
    p = plan(parse("ARG G\nFROM a\nARG USED\n"), {"USED": "1", "G": "2", "OTHER": "3",
                                                  "HTTP_PROXY": "x"})
    assert p.unused_build_args() == ["OTHER"]
