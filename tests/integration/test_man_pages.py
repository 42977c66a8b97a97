"""The man pages built into <build>/man (cmake/Packaging.cmake) against the programs they
describe: every flag a program accepts is in its page, every flag a page lists is accepted, and
midge.conf(5) gives every option of the table with the default `midge --help-config` shows.

The pages are found beside the binaries under test: $MIDGE_MAN_DIR, else the `man` folder of
the build that holds $MIDGE_BIN.
"""
import os
import re
import subprocess

import pytest

from conftest import BROKER_BIN, IS_MOSQUITTO, REPO, tools_dir

pytestmark = pytest.mark.skipif(IS_MOSQUITTO, reason="Midge's own man pages")

MAN_DIR = os.environ.get("MIDGE_MAN_DIR") or os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(BROKER_BIN))), "man")
PAGES = ["midge.8", "midge.conf.5", "midge_pub.1", "midge_sub.1", "midge_rr.1", "midge_passwd.1"]
TOOLS = {"midge_pub": "kPub", "midge_sub": "kSub", "midge_rr": "kRr"}

# A flag in --help text: a dash or two and a letter, after a space, a bracket or a brace.
FLAG = re.compile(r"(?:^|(?<=[\s\[{(|,]))(--?[A-Za-z][A-Za-z0-9-]*)")


def page(name):
    path = os.path.join(MAN_DIR, name)
    if not os.path.exists(path):
        pytest.fail("%s not built (cmake --build builds the man target)" % path)
    with open(path) as f:
        return f.read()


def roff(flag):
    return flag.replace("-", "\\-")


def documented(text, flag):
    """Whether the roff source names `flag` as a whole word."""
    return re.search(re.escape(roff(flag)) + r"(?![A-Za-z0-9]|\\-)", text) is not None


def options_section(text):
    return text.split("\n.SH OPTIONS\n", 1)[1].split("\n.SH ", 1)[0]


def option_heads(text):
    """The flags of the .TP entries of the OPTIONS section (the line after each .TP)."""
    options = options_section(text)
    heads = re.findall(r"^\.TP\n(.*)$", options, re.M)
    return {m.replace("\\-", "-") for h in heads for m in re.findall(r"(?:\\-)+[A-Za-z][A-Za-z0-9]*(?:\\-[A-Za-z0-9]+)*", h)}


def tool(name):
    d = tools_dir(name)
    if d is None:
        pytest.skip("the tools are not built")
    return os.path.join(d, name)


def run(argv):
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


def table_flags(tool_mask):
    """Every flag tools/options_table.cc gives the tool, short and long."""
    with open(os.path.join(REPO, "tools", "options_table.cc")) as f:
        src = f.read()
    rows = re.findall(r'ROW\((nullptr|"[^"]*"),\s*(nullptr|"[^"]*"),\s*([^,]+),', src)
    assert len(rows) > 40, "the ROW table of tools/options_table.cc was not found"
    flags = set()
    for short, long_, mask in rows:
        if "kAll" in mask or tool_mask in mask:
            flags |= {f.strip('"') for f in (short, long_) if f != "nullptr"}
    return flags


@pytest.mark.parametrize("name", PAGES)
def test_page_renders_without_warnings(name):
    page(name)
    r = run(["groff", "-man", "-Tutf8", "-ww", "-z", os.path.join(MAN_DIR, name)])
    assert r.returncode == 0 and r.stderr == "", r.stderr


def help_config_rows():
    """(name, the text after the state column) of every row of `midge --help-config`."""
    out = run([BROKER_BIN, "--help-config"]).stdout.splitlines()
    start = out[0].index("type")
    return [(line.split()[0], line[start:]) for line in out[1:] if line.strip()]


def test_conf_page_lists_every_option_with_its_default():
    text = page("midge.conf.5")
    entries = {}
    for entry in options_section(text).split("\n.TP\n")[1:]:
        m = re.match(r'\.BI "(\S+) " "([^"]*)"\n', entry)
        assert m, entry[:80]
        entries[m.group(1).replace("\\-", "-")] = (m.group(2).replace("\\-", "-"), entry)
    rows = help_config_rows()
    assert len(rows) > 100
    for name, rest in rows:
        assert name in entries, "midge.conf(5) lacks " + name
        kind, entry = entries[name]
        # The text table's columns: the type, then the default (one word, "-" for none).
        assert rest.startswith(kind + " "), (name, kind, rest)
        default = rest[len(kind):].split()[0]
        want = "Default: none." if default in ("-", '""') else "Default: \\fB%s\\fR." % roff(default)
        assert want in entry, "%s: expected %r in\n%s" % (name, want, entry)
    assert len(entries) == len(rows)


def test_conf_page_is_the_generated_one():
    r = run([BROKER_BIN, "--help-config", "man"])
    assert r.returncode == 0
    assert r.stdout in page("midge.conf.5")


def test_midge_page_lists_every_flag():
    text = page("midge.8")
    usage = run([BROKER_BIN, "-h"]).stdout
    with open(os.path.join(REPO, "src", "server", "server.cc")) as f:
        parsed = set(re.findall(r'a == "(--?[A-Za-z][A-Za-z0-9-]*)"', f.read()))
    flags = set(FLAG.findall(usage)) | parsed
    assert {"-c", "-d", "-h", "-p", "-v", "--test-config", "--help-config", "--config-file"} <= flags
    missing = sorted(f for f in flags if not documented(text, f))
    assert not missing, "midge(8) lacks " + ", ".join(missing)
    assert option_heads(text) <= flags, option_heads(text) - flags


def test_midge_passwd_page_lists_every_flag():
    text = page("midge_passwd.1")
    usage = run([tool("midge_passwd")]).stdout
    with open(os.path.join(REPO, "tools", "midge_passwd.cc")) as f:
        parsed = set(re.findall(r'a == "(-[A-Za-z])"', f.read()))
    flags = set(FLAG.findall(usage)) | parsed
    assert {"-b", "-c", "-D", "-H", "-I", "-U"} <= flags
    missing = sorted(f for f in flags if not documented(text, f))
    assert not missing, "midge_passwd(1) lacks " + ", ".join(missing)
    assert option_heads(text) <= flags, option_heads(text) - flags


@pytest.mark.parametrize("name", sorted(TOOLS))
def test_tool_page_lists_every_flag_the_tool_accepts(name):
    text = page(name + ".1")
    binary = tool(name)
    usage = run([binary, "--help"]).stdout
    from_help = set(FLAG.findall(usage))
    accepted = table_flags(TOOLS[name]) | {"--help"}
    assert from_help <= accepted, "--help names flags the table lacks: %s" % (from_help - accepted)
    missing = sorted(f for f in accepted if not documented(text, f))
    assert not missing, "%s(1) lacks %s" % (name, ", ".join(missing))
    # And the other way: every flag the page describes is one the tool takes.
    heads = option_heads(text)
    assert heads <= accepted, "%s(1) describes flags the tool refuses: %s" % (name, heads - accepted)
    for flag in sorted(heads - {"--help"}):
        r = run([binary, flag])
        assert "Unknown option" not in r.stderr, (flag, r.stderr)
