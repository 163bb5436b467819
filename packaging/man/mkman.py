#!/usr/bin/env python3
"""Man pages from the docs: docs/*.md (plus the short NAME/SYNOPSIS headers below for the docs
that are not written as man pages) -> markdown in man-page shape -> go-md2man -> roff.

    mkman.py OUTDIR [VERSION]      writes OUTDIR/NAME.SECTION for every page in PAGES

The docs stay the one source: a page is the doc's own text, its first heading dropped, links to
other docs turned into their text (the page names them in SEE ALSO), and the roff made plain
ASCII (non-ASCII characters as groff \\[uXXXX] escapes), so it renders with or without preconv.
"""

from __future__ import annotations

import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

SEE_ALSO_ALL = ("aliasd(8), aliasd.toml(5), cluamgr(8), clua_services(4), clu_alias.config(4), "
                "clua-member(8); /usr/share/doc/clua/ (operations.md: Prometheus, alerts, "
                "Grafana; systemd.md: the service units)")

HEADERS = {
    "aliasd.toml": """\
# NAME

aliasd.toml - configuration file of aliasd, the clua alias router

# SYNOPSIS

**/etc/clua/aliasd.toml**

# DESCRIPTION

""",
    "clua-member": """\
# NAME

clua-member - the clua member agent: joins aliases, reports listening ports, sends signed adverts

# SYNOPSIS

**clua-member** **--config** *FILE* [**--check**]

# DESCRIPTION

""",
    "aliasd": """\
# NAME

aliasd - the clua alias router: answers ARP for cluster aliases and spreads their traffic over members

# SYNOPSIS

**aliasd** **--config** *FILE* [**--check**]

# DESCRIPTION

aliasd is the DPDK data plane and the cluster-alias control plane of a clua alias router. It
reads its configuration from *FILE* (aliasd.toml(5)); **--check** validates the file, prints the
parsed cluster and exits (0: valid, 2: rejected, every problem listed). SIGTERM and SIGINT stop
it cleanly; cluamgr(8) talks to it over its control socket. The rest of this page is how it
runs under systemd (the unit clua-aliasd.service).

""",
    "clu_alias.config": """\
# NAME

clu_alias.config - cluamgr commands applied at start-up

# SYNOPSIS

**/etc/clua/clu_alias.config**

# DESCRIPTION

""",
}


def section_of(md: str, heading: str) -> str:
    """The body of the `## heading...` section of md (up to the next heading of that level)."""
    lines = md.splitlines()
    out, inside = [], False
    for line in lines:
        if line.startswith("## "):
            if inside:
                break
            inside = line[3:].startswith(heading)
            continue
        if inside:
            out.append(line)
    if not out:
        raise SystemExit(f"mkman: no section '## {heading}' in the doc")
    return "\n".join(out).strip() + "\n"


def doc(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def drop_title(md: str) -> str:
    """The doc without its first `# ...` heading (the page's .TH replaces it)."""
    lines = md.splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    return "\n".join(lines).strip() + "\n"


# (name, section, markdown builder): the doc's text as the page's body.
PAGES = [
    ("cluamgr", 8, lambda: drop_title(doc("cluamgr.md"))),
    ("clua_services", 4, lambda: drop_title(doc("clua_services.md"))),
    ("clu_alias.config", 4, lambda: HEADERS["clu_alias.config"]
     + section_of(doc("cluamgr.md"), "BOOT-TIME COMMANDS")
     + "\n# SEE ALSO\n\n" + SEE_ALSO_ALL + "\n"),
    ("aliasd.toml", 5, lambda: HEADERS["aliasd.toml"] + drop_title(doc("aliasd.toml.md"))
     + "\n# SEE ALSO\n\n" + SEE_ALSO_ALL + "\n"),
    ("clua-member", 8, lambda: HEADERS["clua-member"] + drop_title(doc("member.toml.md"))
     + "\n# FILES\n\n/etc/clua/member.toml: the configuration the unit clua-member.service"
     " starts the agent with (`clua-member --config /etc/clua/member.toml`).\n"
     + "\n# SEE ALSO\n\n" + SEE_ALSO_ALL + "\n"),
    ("aliasd", 8, lambda: HEADERS["aliasd"] + drop_title(doc("systemd.md"))
     + "\n# SEE ALSO\n\n" + SEE_ALSO_ALL + "\n"),
]

# The docs that are pages, as their links name them.
DOC_PAGES = {"cluamgr.md": "cluamgr(8)", "clua_services.md": "clua_services(4)",
             "aliasd.toml.md": "aliasd.toml(5)", "member.toml.md": "clua-member(8)",
             "systemd.md": "aliasd(8)"}

LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")


def unlink(md: str) -> str:
    """[text](other.md#x) -> text (a page cannot follow a link); absolute URLs stay, after the
    text in angle brackets."""
    def repl(m: re.Match) -> str:
        text, target = m.group(1), m.group(2)
        if re.match(r"^[a-z]+://", target):
            return f"{text} <{target}>"
        # A link named after a doc that is a page here says the page.
        return DOC_PAGES.get(text.removeprefix("docs/"), text)
    # Not inside code blocks: a fenced block is left as it is.
    out, fenced = [], False
    for line in md.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        out.append(line if fenced else LINK.sub(repl, line))
    return "\n".join(out) + "\n"


def is_row(line: str) -> bool:
    return line.strip().startswith("|") and line.strip().endswith("|")


def cells(line: str) -> list[str]:
    # `|` inside backticks (a | b) is escaped as \| in the docs' tables.
    parts = re.split(r"(?<!\\)\|", line.strip()[1:-1])
    return [c.strip().replace("\\|", "|") for c in parts]


def untable(md: str) -> str:
    """Markdown tables as lists (`- first: Header: cell; ...`): tbl tables of prose cells do not
    fit 80 columns, a list wraps like the rest of the page."""
    lines = md.splitlines()
    out, i, fenced = [], 0, False
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("```"):
            fenced = not fenced
        if (not fenced and is_row(line) and i + 1 < len(lines)
                and re.match(r"^\s*\|[\s:|-]+\|\s*$", lines[i + 1])):
            head = cells(line)
            i += 2
            if out and out[-1].strip():
                out.append("")
            while i < len(lines) and is_row(lines[i]):
                row = cells(lines[i])
                rest = "; ".join(f"{h}: {c}" for h, c in zip(head[1:], row[1:]) if c)
                out.append(f"- {row[0]}" + (f": {rest}" if len(head) > 2 else f": {row[1]}"
                                             if len(row) > 1 else ""))
                i += 1
            out.append("")
            continue
        out.append(line)
        i += 1
    return "\n".join(out) + "\n"


MACROS = {"TH", "SH", "SS", "PP", "IP", "RS", "RE", "nf", "fi", "TP", "nh", "br", "sp", "B",
          "I", "ad", "na", "LP", "P", "HP", "TS", "TE", "EX", "EE"}


def escape_dots(roff: str) -> str:
    """A text line that begins with `.` or `'` (`..=100`, `...`) would be a roff request:
    go-md2man leaves it so, `\\&` in front makes it text."""
    out = []
    for line in roff.splitlines():
        m = re.match(r"^[.']([A-Za-z]+)?", line)
        if m and not (line[0] == "." and m.group(1) in MACROS):
            line = "\\&" + line
        out.append(line)
    return "\n".join(out) + "\n"


def name_line(roff: str) -> str:
    """`name — what` in NAME as `name \\- what`, the form whatis/lexgrog parse."""
    lines = roff.splitlines()
    for i, line in enumerate(lines):
        if line.strip() == ".SH NAME":
            for j in range(i + 1, min(i + 5, len(lines))):
                if not lines[j].startswith("."):
                    lines[j] = re.sub(r"\s+(—|-|\\-)\s+", r" \\- ", lines[j], count=1)
                    break
            break
    return "\n".join(lines) + "\n"


def ascii_roff(roff: str) -> str:
    return "".join(c if ord(c) < 128 else f"\\[u{ord(c):04X}]" for c in roff)


def page(name: str, sec: int, body, version: str, outdir: Path) -> Path:
    title = f'% {name.upper()} {sec} "clua {version}" "clua manual"\n\n'
    md = title + untable(unlink(body()))
    r = subprocess.run(["go-md2man"], input=md, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"mkman: go-md2man failed on {name}({sec}): {r.stderr}")
    roff = ascii_roff(escape_dots(name_line(r.stdout)))
    path = outdir / f"{name}.{sec}"
    path.write_text(roff, encoding="ascii")
    return path


def build(outdir: Path, version: str) -> list[Path]:
    outdir.mkdir(parents=True, exist_ok=True)
    # One go-md2man per page, all at once (the package build waits for them).
    with ThreadPoolExecutor(len(PAGES)) as pool:
        return list(pool.map(lambda p: page(*p, version, outdir), PAGES))


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        raise SystemExit("usage: mkman.py OUTDIR [VERSION]")
    for p in build(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) == 3 else "0"):
        print(p)
