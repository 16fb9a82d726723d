"""cli/gotemplate.py against Go's own text/template (with docker/cli's functions), when a
Go toolchain is installed, and against the outputs Go gives (written down) always."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tomato.cli import render
from tomato.cli.gotemplate import Template, TemplateError
from tomato.cli.govalues import StrictFields, go_float, go_sprintf

DATA = {
    "Config": {"Env": ["A=1", "B=2"], "Labels": {"a": "1", "b": "two"}, "Tty": False},
    "F": 1000000.5, "Id": "abc123", "Mounts": [{"Destination": "/d", "Source": "/s"},
                                               {"Destination": "/e", "Source": "/t"}],
    "Name": "/web", "NetworkSettings": {"Networks": {"bridge": {"IPAddress": "172.17.0.2"}}},
    "Nil": None,  # keys sorted: Go's json sorts a map's, ours keeps the order given
    "State": {"ExitCode": 0, "Health": None, "Pid": 4242, "Running": True, "Status": "up"},
}

# template -> what Go 1.19's text/template with docker's functions prints for DATA
CASES = {
    "{{.State.Pid}}": "4242",
    "{{.Name}}": "/web",
    "{{json .Config}}": '{"Env":["A=1","B=2"],"Labels":{"a":"1","b":"two"},"Tty":false}',
    "{{json .Config.Env}}": '["A=1","B=2"]',
    "{{json .Nil}} {{json .Missing}}": "null null",
    "{{range .Mounts}}{{.Source}}:{{.Destination}} {{end}}": "/s:/d /t:/e ",
    '{{index .NetworkSettings.Networks "bridge"}}': "map[IPAddress:172.17.0.2]",
    '{{(index .NetworkSettings.Networks "bridge").IPAddress}}': "172.17.0.2",
    '{{index .NetworkSettings.Networks "nope"}}': "<no value>",
    "{{index .Config.Env 1}}": "B=2",
    "{{if .State.Running}}up{{else}}down{{end}}": "up",
    "{{if .Config.Tty}}tty{{else if .State.Running}}run{{else}}no{{end}}": "run",
    '{{printf "%s|%d|%5.2f|%-4s|%q|%v|%t" .Name .State.Pid 3.14159 "a" "b" .Config.Env true}}':
        '/web|4242| 3.14|a   |"b"|[A=1 B=2]|true',
    '{{printf "%s" 5}}': "%!s(int=5)",
    '{{printf "%d %d" 1}}': "1 %!d(MISSING)",
    '{{printf "%05d|%x|%X|%o|%6.1f|%e" 42 255 255 8 2.25 12345.678}}':
        "00042|ff|FF|10|   2.2|1.234568e+04",
    '{{lower "AbC"}} {{upper .Name}} {{title "hello wide-world"}}': "abc /WEB Hello Wide-World",
    '{{split "a,b,c" ","}} {{len .Mounts}} {{len .Name}}': "[a b c] 2 4",
    '{{pad "x" 2 1}}|{{pad "" 2 1}}|{{truncate "abcdef" 3}}|{{truncate "ab" 3}}':
        "  x ||abc|ab",
    "{{.State.Running}} {{.Config.Tty}} {{.Missing}} {{.Nil}} {{.Config.Labels}}":
        "true false <no value> <no value> map[a:1 b:two]",
    "{{.F}} {{.Missing.Deeper}}": "1.0000005e+06 <no value>",
    "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}": "a=1;b=two;",
    "{{range $i, $m := .Mounts}}{{$i}}{{$m.Source}}{{end}}": "0/s1/t",
    "{{range .Nil}}x{{else}}empty{{end}}": "empty",
    "{{range .Mounts}}{{if eq .Source \"/s\"}}{{continue}}{{end}}{{.Source}}{{end}}": "/t",
    "{{range .Mounts}}{{.Source}}{{break}}{{end}}": "/s",
    "a  {{- \" b \" -}}  c {{/* a comment */}}d\n{{- /* trimmed */ -}}\n e": 'a b c de',
    "{{with .State}}{{.Pid}}{{end}}{{with .Nil}}x{{else}}none{{end}}": "4242none",
    "{{$x := .Name}}{{$x}}{{$.State.Pid}}{{$x = \"y\"}}{{$x}}": "/web4242y",
    "{{.Name | printf \"%s!\"}} {{.Config.Env | len}}": "/web! 2",
    "{{if eq .State.Pid 1 4242}}y{{end}}{{if and .State.Running (gt .State.Pid 3)}}z{{end}}":
        "yz",
    '{{if or .Nil .Missing "last"}}{{or .Nil "d"}}{{end}}{{and 1 0}}{{not .Nil}}': "d0true",
    '{{if ne .State.Status "up"}}n{{else}}e{{end}}{{if lt 1 2}}l{{end}}{{if ge "b" "a"}}g{{end}}':
        "elg",
    "{{print 1 2 \"a\" 3}} {{println \"x\" 1}}": "1 2a3 x 1\n",
    '{{slice "hello" 1 3}} {{slice .Config.Env 1}}': "el [B=2]",
    "{{html \"<a&b>\"}} {{urlquery \"a b&c\"}} {{js \"it's\"}}":
        "&lt;a&amp;b&gt; a+b%26c it\\'s",
    "{{.Config}}": "map[Env:[A=1 B=2] Labels:map[a:1 b:two] Tty:false]",
    "{{.Mounts}}": "[map[Destination:/d Source:/s] map[Destination:/e Source:/t]]",
    "{{json .Name}} {{json .State.Pid}}": '"/web" 4242',
    "{{`raw\\n`}} {{'a'}} {{0x10}} {{-3}} {{1.5}}": "raw\\n 97 16 -3 1.5",
    "x\\ty": "x\\ty",
}

# what docker prints where its value is typed ([]string, not []interface {}): Go's
# map-of-JSON (the oracle) refuses these
TYPED_CASES = {
    '{{join .Config.Env ","}}': "A=1,B=2",
    '{{join (split "a b" " ") "-"}}': "a-b",
}

# templates Go refuses, at parse time or while executing (message prefixes as Go's)
ERRORS = {
    "{{.State.Health.Status}}": "template: :1:8: executing \"\" at <.State.Health.Status>: "
                                "nil pointer evaluating interface {}.Status",
    "{{range .Mounts}}\n  {{.Source.X}}{{end}}": "template: :2:11: executing",
    "{{$x := .Name}}{{$x.Y}}": "template: :1:19: executing",
    '{{.Name | printf "%d" | len | index .Mounts}}': "template: :1:30: executing",
    "{{.Name.X}}": "can't evaluate field X in type",
    "{{index .Mounts 5}}": ":1:2: executing \"\" at <index .Mounts 5>: error calling index: "
                           "index out of range: 5",
    "{{nofunc 1}}": 'template: :1: function "nofunc" not defined',
    "{{.Name": "template: :1: unclosed action",
    "{{if 1}}": "template: :1: unexpected EOF",
    "{{end}}": "template: :1: unexpected {{end}}",
    "{{len 3}}": "error calling len: len of type int",
    "{{eq .Name 1}}": "error calling eq: incompatible types for comparison",
    '{{range .Name}}{{end}}': "range can't iterate over /web",
    "{{$nope}}": 'template: :1: undefined variable "$nope"',
    "{{if 1}}{{$x := 1}}{{end}}{{$x}}": 'template: :1: undefined variable "$x"',
    "{{.Name 1}}": "Name is not a method but has arguments",
}


@pytest.mark.parametrize("text", list(CASES) + list(TYPED_CASES))
def test_template_prints_what_go_prints(text: str) -> None:
    assert Template(text).execute(DATA) == {**CASES, **TYPED_CASES}[text]


@pytest.mark.parametrize("text", list(ERRORS))
def test_template_errors_as_go_does(text: str) -> None:
    with pytest.raises(TemplateError) as err:
        Template(text).execute(DATA)
    assert ERRORS[text] in str(err.value)


def test_floats_print_as_fmt_does() -> None:
    assert [go_float(v) for v in (1e6, 123456.0, 1234567.0, 1e20, 0.0001, 0.00001, 2.5,
                                  100.0, -0.5, 1e-7)] == \
        ["1e+06", "123456", "1.234567e+06", "1e+20", "0.0001", "1e-05", "2.5", "100",
         "-0.5", "1e-07"]
    assert go_sprintf("%v %v", 1.5, None) == "1.5 <nil>"
    assert go_sprintf("%s", "a", "b") == "a%!(EXTRA string=b)"


def test_strict_rows_refuse_unknown_fields() -> None:
    row = StrictFields(ID="x")
    row.type_name = "*formatter.ContainerContext"
    assert Template("{{.ID}}").execute(row) == "x"
    with pytest.raises(TemplateError, match=r"can't evaluate field Nope in type "
                                            r"\*formatter.ContainerContext"):
        Template("{{.Nope}}").execute(row)


# -- tables: docker's formatter and Go's tabwriter ----------------------------------------
def test_table_header_and_tabwriter_columns() -> None:
    rows = [{"ID": "abc", "Names": "web", "Status": "Up 2 seconds"},
            {"ID": "abcdefabcdef", "Names": "x", "Status": "Exited (0)"}]
    headers = {"ID": "CONTAINER ID", "Names": "NAMES", "Status": "STATUS"}
    out = render.format_rows("table {{.ID}}\\t{{.Names}}\\t{{lower .Status}}", rows, headers)
    assert out == ("CONTAINER ID   NAMES     STATUS\n"
                   "abc            web       up 2 seconds\n"
                   "abcdefabcdef   x         exited (0)\n")
    # without `table`: no header, no alignment, one line per item (\t as a tab)
    assert render.format_rows("{{.ID}}\\t{{.Names}}", rows, headers) == \
        "abc\tweb\nabcdefabcdef\tx\n"
    # `table` with nothing listed still prints the header
    assert render.format_rows("table {{.ID}}", [], headers) == "CONTAINER ID\n"
    # json: one JSON object a line
    assert render.format_rows("json", rows[:1], headers) == \
        '{"ID":"abc","Names":"web","Status":"Up 2 seconds"}\n'


def test_tabwriter_blocks_as_go() -> None:
    # Go's tabwriter: a column is aligned over consecutive lines that have it
    text = "a\tbb\tc\naaaa\tb\nzzzzzzzzzzzzzz\nq\tw\n"
    assert render.tabwrite(text) == ("a         bb        c\n"
                                     "aaaa      b\n"
                                     "zzzzzzzzzzzzzz\n"
                                     "q         w\n")


def test_bad_template_is_one_line_error() -> None:
    with pytest.raises(TemplateError, match="unclosed action"):
        render.format_rows("{{.ID", [{"ID": "x"}], {})


# -- the oracle: Go's text/template itself ---------------------------------------------
ORACLE = r'''
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strings"
	"text/template"
)

func fix(v interface{}) interface{} {
	switch x := v.(type) {
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1e15 && !strings.Contains(fmt.Sprint(x), ".") {
			return int(x)
		}
		return x
	case []interface{}:
		for i := range x { x[i] = fix(x[i]) }
	case map[string]interface{}:
		for k := range x { x[k] = fix(x[k]) }
	}
	return v
}

var funcs = template.FuncMap{
	"json": func(v interface{}) string {
		buf := &bytes.Buffer{}
		enc := json.NewEncoder(buf)
		enc.SetEscapeHTML(false)
		enc.Encode(v)
		return strings.TrimSpace(buf.String())
	},
	"split": strings.Split, "join": strings.Join, "title": strings.Title,
	"lower": strings.ToLower, "upper": strings.ToUpper,
	"pad": func(s string, p, q int) string {
		if s == "" { return s }
		return strings.Repeat(" ", p) + s + strings.Repeat(" ", q)
	},
	"truncate": func(s string, n int) string {
		if len(s) < n { return s }
		return s[:n]
	},
}

func main() {
	var cases []struct{ T string; D interface{} }
	if err := json.NewDecoder(os.Stdin).Decode(&cases); err != nil { panic(err) }
	var out []map[string]string
	for _, c := range cases {
		res := map[string]string{}
		t, err := template.New("").Funcs(funcs).Parse(c.T)
		if err != nil {
			res["err"] = err.Error()
		} else {
			buf := &bytes.Buffer{}
			if err := t.Execute(buf, fix(c.D)); err != nil {
				res["err"] = err.Error()
			} else {
				res["out"] = buf.String()
			}
		}
		out = append(out, res)
	}
	json.NewEncoder(os.Stdout).Encode(out)
}
'''


@pytest.fixture(scope="module")
def go_oracle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    go = shutil.which("go")
    if go is None:
        pytest.skip("no Go toolchain: the written-down outputs stand in for it")
    work = tmp_path_factory.mktemp("gooracle")
    (work / "main.go").write_text(ORACLE)
    env = {**os.environ, "GOCACHE": str(work / "cache"), "HOME": str(work),
           "GOPATH": str(work / "gopath"), "GO111MODULE": "off", "GOFLAGS": ""}
    subprocess.run([go, "build", "-o", str(work / "oracle"), str(work / "main.go")],
                   check=True, env=env, cwd=work, capture_output=True, timeout=300)
    return work / "oracle"


def _ask(oracle: Path, texts: list[str]) -> list[dict[str, str]]:
    cases = [{"T": t, "D": DATA} for t in texts]
    res = subprocess.run([str(oracle)], input=json.dumps(cases), capture_output=True,
                         text=True, check=True, timeout=60)
    answers: list[dict[str, str]] = json.loads(res.stdout)
    return answers


# more forms, checked against Go only (same output, or both refuse)
ORACLE_ONLY = [
    "{{range .Mounts}}{{$.Name}}{{.Source}}{{end}}",
    "{{range $i, $m := .Mounts}}{{if $i}},{{end}}{{$m.Destination}}{{end}}",
    '{{printf "%v|%s|%q|%d" .Config.Labels .Config.Env .Config.Env .Mounts}}',
    '{{printf "%-8s|%8s|%.2s|%x|%t" "ab" "cd" "xyz" "hi" 1}}',
    "{{with $x := .State}}{{$x.Status}}{{end}}",
    "{{range .Config.Labels}}{{.}} {{end}}",
    "{{index .Mounts 0 \"Source\"}}",
    "{{len .Config.Labels}} {{len .NetworkSettings.Networks}}",
    "{{if not .State.ExitCode}}zero{{end}}",
    "{{eq .State.Status \"up\" \"down\"}} {{ne 1 2}} {{le 2 2}} {{gt 1.5 1}}",
    "{{.NetworkSettings.Networks.bridge.IPAddress}}",
    "{{ .Name }} {{- .Id -}} {{ .State.Pid }}",
    "{{print .Nil}} {{print .Missing}} {{println .Config.Env}}",
    "{{printf \"%v %v\" .Nil .Missing}}",
    "{{range .Mounts}}{{range $k, $v := .}}{{$k}}{{end}}{{end}}",
    "{{and .Nil 1}} {{or 0 \"\"}} {{and 1 2 3}}",
    "{{slice .Mounts 1 2}} {{index \"abc\" 1}}",
    "{{.State}}",
    "{{json .}}",
    "{{title (lower \"HELLO wORLD\")}} {{upper (index .Config.Env 0)}}",
    "{{printf \"%5.1f%%\" 12.345}}",
    "{{range $k, $v := .NetworkSettings.Networks}}{{$k}}={{$v.IPAddress}}{{end}}",
    "{{if .Missing}}a{{else if .Nil}}b{{else}}c{{end}}",
    "{{.Config.Tty | not}} {{\"x\" | printf \"%s%s\" \"y\"}}",
    "{{range .State.Status}}x{{end}}",  # (range over an int: Go 1.22, newer than the oracle)
    "{{$a := 1}}{{range .Mounts}}{{$a = 2}}{{end}}{{$a}}",
    "{{.Name | len | printf \"%03d\"}}",
    "{{ /* spaced comment */ }}",
    "{{{{.Name}}",
    "{{.Name}}}}",
    "{{\"unterminated}}",
    "{{else}}",
    "{{range}}{{end}}",
    "{{(.Name}}",
]


def test_go_agrees_on_more_forms(go_oracle: Path) -> None:
    for text, answer in zip(ORACLE_ONLY, _ask(go_oracle, ORACLE_ONLY), strict=True):
        try:
            ours: dict[str, str] = {"out": Template(text).execute(DATA)}
        except TemplateError as err:
            ours = {"err": str(err)}
        if "err" in answer:
            assert "err" in ours, (text, answer, ours)
        else:
            assert ours == answer, text


def test_go_agrees_with_the_written_outputs(go_oracle: Path) -> None:
    texts = list(CASES)
    for text, answer in zip(texts, _ask(go_oracle, texts), strict=True):
        assert answer == {"out": CASES[text]}, text
    texts = [t for t in ERRORS if t != "{{.Name 1}}"]  # typed contexts word it so
    for text, answer in zip(texts, _ask(go_oracle, texts), strict=True):
        assert "err" in answer and ERRORS[text] in answer["err"], (text, answer)
