import pytest

from tomato.cli.render import human_size, render_template
from tomato.engine.humanize import human_duration
from tomato.engine.image_changes import parse as parse_changes
from tomato.errors import InvalidArgument


@pytest.mark.parametrize("n,text", [(0, "0B"), (999, "999B"), (1000, "1kB"), (4_260_000, "4.26MB"),
                                    (1_240_000_000, "1.24GB")])
def test_human_size(n, text):
    assert human_size(n) == text


@pytest.mark.parametrize("s,text", [(0.5, "Less than a second"), (5, "5 seconds"),
                                    (61, "About a minute"), (600, "10 minutes"),
                                    (3600, "About an hour"), (7200, "2 hours"),
                                    (86400 * 3, "3 days"), (86400 * 21, "3 weeks"),
                                    (86400 * 90, "3 months"), (86400 * 800, "2 years")])
def test_human_duration(s, text):
    assert human_duration(s) == text


def test_template():
    obj = {"Id": "x", "Config": {"Cmd": ["sh"]}, "N": None}
    assert render_template("{{.Id}}\\t{{json .Config.Cmd}}|{{.N}}|{{.Config}}", obj) == \
        'x\t["sh"]|<no value>|map[Cmd:[sh]]'  # Go's text/template, as docker prints


def test_changes():
    assert parse_changes(['CMD ["a", "b"]', "ENTRYPOINT run me", "ENV A=1", "ENV B 2",
                          "WORKDIR /w", "EXPOSE 80 53/udp", "LABEL k=v"]) == {
        "Cmd": ["a", "b"], "Entrypoint": ["/bin/sh", "-c", "run me"], "Env": ["A=1", "B=2"],
        "WorkingDir": "/w", "ExposedPorts": {"80/tcp": {}, "53/udp": {}}, "Labels": {"k": "v"}}
    with pytest.raises(InvalidArgument):
        parse_changes(["RUN x"])
