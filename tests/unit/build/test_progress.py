"""The build's progress renderers, fed the same events: Docker's classic words (what
docker-py parses), BuildKit's plain lines, and the live view's redraws."""

from __future__ import annotations

import io

from tomato.build.progress import Classic, Live, Plain, Reporter, for_terminal


def _feed(r: Reporter) -> None:
    r.begin(3)
    r.step(1, "1/3", "FROM busybox")
    r.done("sha256:" + "a" * 64)
    r.step(2, "2/3", "ENV A=1")
    r.cached()
    r.done("sha256:" + "b" * 64)
    r.step(3, "3/3", "RUN echo hi")
    r.running("c" * 64)
    r.output(1, b"hi\nno newline yet")
    r.done("sha256:" + "d" * 64, "c" * 64)
    r.note("One or more build-args [X] were not consumed")
    r.finished("sha256:" + "d" * 64, ["app:1"])


def test_classic_is_dockers_legacy_builder() -> None:
    out: list[str] = []
    _feed(Classic(out.append))
    assert "".join(out) == (
        "Step 1/3 : FROM busybox\n ---> aaaaaaaaaaaa\n"
        "Step 2/3 : ENV A=1\n ---> Using cache\n ---> bbbbbbbbbbbb\n"
        "Step 3/3 : RUN echo hi\n ---> Running in cccccccccccc\nhi\nno newline yet"
        "Removing intermediate container cccccccccccc\n ---> dddddddddddd\n"
        "[Warning] One or more build-args [X] were not consumed\n"
        "Successfully built dddddddddddd\nSuccessfully tagged app:1\n")


def test_plain_is_buildkits() -> None:
    buf = io.StringIO()
    _feed(Plain(buf))
    lines = [line for line in buf.getvalue().splitlines() if line]
    assert lines[:3] == ["#1 [1/3] FROM busybox", "#1 DONE 0.0s", "#2 [2/3] ENV A=1"]
    assert "#2 CACHED" in lines and not any(line.startswith("#2 DONE") for line in lines)
    assert any(line.startswith("#3 ") and line.endswith(" hi") for line in lines)
    assert any(line.endswith(" no newline yet") for line in lines)  # flushed at DONE
    assert lines[-3:] == [f"#4 writing image sha256:{'d' * 64} done", "#4 naming to app:1 done",
                          "#4 DONE 0.0s"]


def test_live_redraws_in_place_and_plain_off_a_terminal() -> None:
    buf = io.StringIO()
    live = Live(buf)
    _feed(live)
    text = buf.getvalue()
    assert "\x1b[1A\x1b[2K" in text and "[+] Building" in text
    assert " => [2/3] ENV A=1  CACHED" in text and "writing image" in text
    assert isinstance(for_terminal("auto", io.StringIO(), quiet=False), Plain)
    assert type(for_terminal("plain", io.StringIO(), quiet=True)) is Reporter
