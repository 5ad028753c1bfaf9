"""Inputs and Outputs tables of our Terraform modules, from their variables.tf and outputs.tf.

Each documented module's README (and docs/deploy.md for the root module) holds its tables
between marker comments; this script writes them there (`--write`) or reports the files whose
tables differ from the .tf files (`--check`, what tests/unit/test_docs.py runs). A variable or
output added without a description fails the check.

    .venv/bin/python scripts/docs/tf_tables.py --write    # after editing a variables.tf/outputs.tf
    .venv/bin/python scripts/docs/tf_tables.py --check

No HCL library: the blocks we write are simple (`variable "x" { description = "..."
type = ... default = ... validation { ... } }`), so a scanner that knows strings, comments and
brackets is enough; a top-level block of another kind in these files is an error, not skipped.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM = ROOT / "terraform"

# Marker pairs that enclose the generated tables in a Markdown file.
INPUTS_BEGIN, INPUTS_END = "<!-- BEGIN_TF_INPUTS -->", "<!-- END_TF_INPUTS -->"
OUTPUTS_BEGIN, OUTPUTS_END = "<!-- BEGIN_TF_OUTPUTS -->", "<!-- END_TF_OUTPUTS -->"

_OPEN = "([{"
_CLOSE = ")]}"


class HclError(ValueError):
    """A .tf file this scanner cannot read (a shape we do not write)."""


def _show(path: Path) -> str:
    """A path as messages print it: relative to the repository when inside it."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


@dataclass(frozen=True)
class Variable:
    name: str
    description: str
    type: str
    default: str | None  # the HCL expression as written (one line); None = required

    @property
    def required(self) -> bool:
        return self.default is None


@dataclass(frozen=True)
class Output:
    name: str
    description: str


def _skip_string(text: str, i: int) -> int:
    """Index just past the string literal starting at text[i] == '"' (escapes and ${...} kept)."""
    i += 1
    depth = 0  # inside ${ ... } / %{ ... } templates
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if depth == 0 and c == '"':
            return i + 1
        if c in "$%" and text.startswith("{", i + 1) and not text.startswith(c, i - 1):
            depth += 1
            i += 2
            continue
        if depth and c == "}":
            depth -= 1
        elif c == "\n" and depth == 0:
            raise HclError(f"unterminated string at offset {i}")
        i += 1
    raise HclError("unterminated string at end of file")


def _skip_heredoc(text: str, i: int) -> int:
    """Index just past a heredoc (<<EOT or <<-EOT) starting at text[i]."""
    m = re.compile(r"<<-?([A-Za-z_][A-Za-z0-9_]*)\n").match(text, i)
    if not m:
        raise HclError(f"unreadable heredoc at offset {i}")
    end = re.compile(rf"^\s*{m.group(1)}\s*$", re.M).search(text, m.end())
    if not end:
        raise HclError(f"unterminated heredoc {m.group(1)}")
    return end.end()


def _strip_comments(text: str) -> str:
    """The text with every comment replaced by spaces (strings and heredocs left intact)."""
    out: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == '"':
            j = _skip_string(text, i)
        elif text.startswith("<<", i) and re.match(r"<<-?[A-Za-z_]", text[i : i + 4]):
            j = _skip_heredoc(text, i)
        elif c == "#" or text.startswith("//", i):
            j = text.find("\n", i)
            j = len(text) if j < 0 else j
            out.append(" " * (j - i))
            i = j
            continue
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            if j < 0:
                raise HclError("unterminated /* comment")
            j += 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
            continue
        else:
            j = i + 1
        out.append(text[i:j])
        i = j
    return "".join(out)


def _match_bracket(text: str, i: int) -> int:
    """Index just past the bracket closing the one at text[i] (comments already stripped)."""
    stack = [text[i]]
    i += 1
    while i < len(text):
        c = text[i]
        if c == '"':
            i = _skip_string(text, i)
            continue
        if text.startswith("<<", i) and re.match(r"<<-?[A-Za-z_]", text[i : i + 4]):
            i = _skip_heredoc(text, i)
            continue
        if c in _OPEN:
            stack.append(c)
        elif c in _CLOSE:
            if _OPEN.index(stack.pop()) != _CLOSE.index(c):
                raise HclError(f"mismatched {c!r} at offset {i}")
            if not stack:
                return i + 1
        i += 1
    raise HclError("unbalanced brackets")


def _blocks(text: str, kinds: tuple[str, ...]) -> list[tuple[str, str, str]]:
    """Top-level blocks `kind "label" { body }` as (kind, label, body)."""
    text = _strip_comments(text)
    head = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s+"([^"]+)"\s*\{')
    blocks: list[tuple[str, str, str]] = []
    i = 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        m = head.match(text, i)
        if not m:
            raise HclError(f"expected a labelled block at: {text[i : i + 40]!r}")
        if m.group(1) not in kinds:
            raise HclError(f"unexpected {m.group(1)} block {m.group(2)!r} (this file holds {', '.join(kinds)})")
        end = _match_bracket(text, m.end() - 1)
        blocks.append((m.group(1), m.group(2), text[m.end() : end - 1]))
        i = end
    return blocks


def _attributes(body: str) -> dict[str, str]:
    """The top-level `name = expression` attributes of a block body (nested blocks skipped)."""
    attrs: dict[str, str] = {}
    i = 0
    name_re = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_-]*)\s*(=(?!=)|\{)")
    while i < len(body):
        if body[i].isspace():
            i += 1
            continue
        m = name_re.match(body, i)
        if not m:
            raise HclError(f"expected an attribute or block at: {body[i : i + 40]!r}")
        if m.group(2) == "{":  # a nested block (validation, ...): not documented
            i = _match_bracket(body, m.end() - 1)
            continue
        j = m.end()
        start = j
        while j < len(body) and body[j] != "\n":
            c = body[j]
            if c == '"':
                j = _skip_string(body, j)
            elif body.startswith("<<", j) and re.match(r"<<-?[A-Za-z_]", body[j : j + 4]):
                j = _skip_heredoc(body, j)
            elif c in _OPEN:
                j = _match_bracket(body, j)
            else:
                j += 1
        attrs[m.group(1)] = body[start:j].strip()
        i = j
    return attrs


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}


def _string_value(expr: str, where: str) -> str:
    """The value of a plain HCL string literal (escapes resolved)."""
    if not (len(expr) >= 2 and expr[0] == expr[-1] == '"'):
        raise HclError(f"{where}: description must be a plain string literal, got {expr!r}")
    body = expr[1:-1]
    body = re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(0)), body)
    return body.replace("$${", "${").replace("%%{", "%{")


_STRING_LITERAL = re.compile(r'("(?:[^"\\\n]|\\.)*")')


def _squeeze(line: str) -> str:
    """Runs of spaces outside string literals as one (terraform fmt aligns `=` signs)."""
    pieces = _STRING_LITERAL.split(line)
    return "".join(p if k % 2 else re.sub(r"\s+", " ", p) for k, p in enumerate(pieces))


def _one_line(expr: str) -> str:
    """A multi-line type or default as one line: object attributes joined by ', '."""
    parts = [_squeeze(p.strip()) for p in expr.splitlines() if p.strip()]
    out = parts[0] if parts else ""
    for p in parts[1:]:
        if out[-1] in _OPEN + "," or p[0] in _CLOSE:
            out += " " + p
        else:
            out += ", " + p
    return out


def read_variables(module: Path) -> list[Variable]:
    """The module's variables in file order (every *.tf file holding variable blocks)."""
    variables: list[Variable] = []
    for tf in sorted(module.glob("*.tf")):
        text = tf.read_text()
        if not re.search(r'^variable\s+"', text, re.M):
            continue
        for _, name, body in _blocks(text, ("variable",)):
            attrs = _attributes(body)
            where = f"{_show(tf)}: variable {name}"
            if "description" not in attrs:
                raise HclError(f"{where} has no description")
            variables.append(
                Variable(
                    name=name,
                    description=_string_value(attrs["description"], where),
                    type=_one_line(attrs.get("type", "any")),
                    default=_one_line(attrs["default"]) if "default" in attrs else None,
                )
            )
    return variables


def read_outputs(module: Path) -> list[Output]:
    """The module's outputs in file order."""
    outputs: list[Output] = []
    for tf in sorted(module.glob("*.tf")):
        text = tf.read_text()
        if not re.search(r'^output\s+"', text, re.M):
            continue
        for _, name, body in _blocks(text, ("output",)):
            attrs = _attributes(body)
            where = f"{_show(tf)}: output {name}"
            if "description" not in attrs:
                raise HclError(f"{where} has no description")
            outputs.append(Output(name=name, description=_string_value(attrs["description"], where)))
    return outputs


def _cell(text: str) -> str:
    """Prose for a Markdown table cell: one line, pipes escaped, '<' outside code spans not read
    as the start of an HTML tag."""
    pieces = re.split(r"(`[^`]*`)", " ".join(text.split()))
    return "".join(p if k % 2 else p.replace("<", "\\<") for k, p in enumerate(pieces)).replace("|", "\\|")


def _code(text: str) -> str:
    """A code span for a table cell (pipes escaped; backticks inside widen the fence)."""
    text = text.replace("|", "\\|")
    fence = "``" if "`" in text else "`"
    pad = " " if "`" in text else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def inputs_table(variables: list[Variable]) -> str:
    if not variables:
        return "No inputs."
    rows = ["| Name | Description | Type | Default | Required |", "|---|---|---|---|:---:|"]
    for v in variables:
        default = "n/a" if v.default is None else _code(v.default)
        required = "yes" if v.required else "no"
        rows.append(f"| `{v.name}` | {_cell(v.description)} | {_code(v.type)} | {default} | {required} |")
    return "\n".join(rows)


def outputs_table(outputs: list[Output]) -> str:
    if not outputs:
        return "No outputs."
    rows = ["| Name | Description |", "|---|---|"]
    rows += [f"| `{o.name}` | {_cell(o.description)} |" for o in outputs]
    return "\n".join(rows)


def documented_modules() -> dict[Path, Path]:
    """Markdown file -> the module directory its tables describe."""
    docs = {ROOT / "docs" / "deploy.md": TERRAFORM}
    for parent in (TERRAFORM / "modules", TERRAFORM / "examples"):
        for module in sorted(p for p in parent.iterdir() if p.is_dir() and any(p.glob("*.tf"))):
            docs[module / "README.md"] = module
    return docs


def _replace_between(text: str, begin: str, end: str, table: str, where: Path) -> str:
    if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
        raise HclError(f"{_show(where)}: needs exactly one {begin} ... {end} pair")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{table}\n{end}{tail}"


def render(markdown: Path, module: Path) -> str:
    """The Markdown file's text with its tables regenerated from the module."""
    text = markdown.read_text()
    text = _replace_between(text, INPUTS_BEGIN, INPUTS_END, inputs_table(read_variables(module)), markdown)
    return _replace_between(text, OUTPUTS_BEGIN, OUTPUTS_END, outputs_table(read_outputs(module)), markdown)


def stale(docs: dict[Path, Path] | None = None) -> list[str]:
    """Problems: a documented module without its README, or tables that differ from the .tf files."""
    problems: list[str] = []
    for markdown, module in (docs or documented_modules()).items():
        if not markdown.exists():
            problems.append(f"{_show(markdown)} is missing (module {_show(module)})")
        elif render(markdown, module) != markdown.read_text():
            problems.append(f"{_show(markdown)}: tables differ from {_show(module)}/*.tf")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true", help="exit 1 when a README's tables are out of date")
    mode.add_argument("--write", action="store_true", help="rewrite the tables in place")
    args = parser.parse_args(argv)
    try:
        if args.write:
            for markdown, module in documented_modules().items():
                if not markdown.exists():
                    print(f"tf_tables: {_show(markdown)} is missing: write it with the marker comments")
                    return 1
                new = render(markdown, module)
                if new != markdown.read_text():
                    markdown.write_text(new)
                    print(f"tf_tables: wrote {_show(markdown)}")
            return 0
        problems = stale()
    except HclError as exc:
        print(f"tf_tables: {exc}")
        return 1
    for p in problems:
        print(f"tf_tables: {p}; run .venv/bin/python scripts/docs/tf_tables.py --write")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
