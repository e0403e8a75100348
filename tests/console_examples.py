"""The console examples of a Markdown file, run against `make run` and compared with what the
file says they print. tests/test_readme_examples.py runs them for README.md and docs/*.md.

The format, so that a document can be written to it:

- Only fenced blocks tagged `console` are examples (```console). Other blocks (`sh`, `json`,
  `text`) are never run.
- A line starting with `$ ` is a command; a command line ending in `\\` continues on the next
  line, as in a shell. The lines after it, up to the next `$ ` line or the end of the block,
  are what it prints (stdout). No lines: it prints nothing.
- Commands run in order, each in bash in the repository's root, the environment carried from
  one to the next (so `export API=…` holds for the lines after it), against a `make run` of
  the file's own that starts empty: ids are therefore compared exactly, they are part of what
  an example shows. PORT, MOTO_PORT and LOCAL_DIR are that run's.
- Output that starts with `HTTP/` is a response (`curl -i`): the status line must match; each
  header line shown must be in the response with that value (a document shows only the
  headers that matter; the others are not compared); then the body, after a blank line or
  straight after the headers shown.
- Bodies and other output are compared as JSON when both sides are JSON, as text otherwise,
  after normalising what changes from run to run: times (`2026-11-23T09:45:05.579Z` and the
  bot's `2026-11-23 12:45` -> `<time>`), `next_cursor` values (`<cursor>`) and `ETag` header values (`<etag>`).

When the service changes what it answers, regenerate the expected outputs (only the examples that
fail are rewritten; the header lines a document shows stay the ones it shows, their values and
the bodies are taken from the run), then read the diff:

    .venv/bin/python tests/console_examples.py --update README.md docs/telegram.md
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from local_run import ROOT, local_service  # noqa: E402

COMMAND_TIMEOUT = 60
# The documents show make run's defaults: the API key local-dev-key, the local Telegram secret.
DEFAULTS = {"API_KEYS": "", "TELEGRAM_SECRET_TOKEN": ""}
_FENCE = re.compile(r"^```console\s*$")
# ISO instants, and the bot's `2026-12-09 10:00` (its on-call answers name the time of the run).
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z|\d{4}-\d\d-\d\d \d\d:\d\d")
_CURSOR = re.compile(r'"next_cursor":\s*"[^"]*"')
_HEADER = re.compile(r"^([A-Za-z0-9-]+):\s?(.*)$")


@dataclass
class Example:
    path: Path
    line: int  # of the command's first line, 1-based
    command: str
    expected: list[str]
    output_lines: tuple[int, int]  # [start, end) of the expected output, 0-based

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def examples(path: Path) -> list[Example]:
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Example] = []
    in_block = False
    current: Example | None = None
    index = 0
    while index < len(lines):
        line = lines[index]
        if not in_block:
            in_block = bool(_FENCE.match(line))
        elif line.startswith("```"):
            in_block, current = False, None
        elif line.startswith("$ "):
            start = index
            command = [line[2:]]
            while command[-1].endswith("\\") and index + 1 < len(lines):
                index += 1
                command.append(lines[index])
            current = Example(path, start + 1, "\n".join(command), [], (index + 1, index + 1))
            found.append(current)
        elif current is not None:
            current.expected.append(line)
            current.output_lines = (current.output_lines[0], index + 1)
        index += 1
    return found


def run_all(items: list[Example], env: dict[str, str]) -> list[tuple[str, str]]:
    """Each command's stdout and stderr, in order, the environment carried from one to the next."""
    outputs = []
    with tempfile.TemporaryDirectory(prefix="console-") as scratch:
        saved = Path(scratch) / "env"
        saved.write_text("")
        for example in items:
            script = f'source "{saved}"\n{example.command}\n__rc=$?\nexport -p > "{saved}"\nexit $__rc\n'
            result = subprocess.run(["bash", "-c", script], cwd=ROOT, env=env, capture_output=True,
                                    timeout=COMMAND_TIMEOUT)
            outputs.append((result.stdout.decode("utf-8", errors="replace").replace("\r\n", "\n"),
                            result.stderr.decode("utf-8", errors="replace")))
    return outputs


def normalise(text: str) -> str:
    return _CURSOR.sub('"next_cursor":"<cursor>"', _TIME.sub("<time>", text))


def _parse_http(lines: list[str]) -> tuple[str, list[tuple[str, str]], str]:
    status, headers, rest = lines[0], [], 1
    while rest < len(lines) and (match := _HEADER.match(lines[rest])):
        headers.append((match.group(1).lower(), match.group(2).strip()))
        rest += 1
    if rest < len(lines) and not lines[rest].strip():
        rest += 1
    return status.strip(), headers, "\n".join(lines[rest:])


def _same_body(expected: str, actual: str) -> bool:
    expected, actual = normalise(expected).strip(), normalise(actual).strip()
    try:
        return json.loads(expected) == json.loads(actual)
    except ValueError:
        return expected == actual


def differences(example: Example, actual: str) -> list[str]:
    """What does not match, in words; [] when the example holds."""
    expected_lines, actual_lines = example.expected, actual.rstrip("\n").split("\n") if actual.strip() else []
    if not expected_lines or not expected_lines[0].startswith("HTTP/"):
        return [] if _same_body("\n".join(expected_lines), actual) else ["output differs"]
    if not actual_lines or not actual_lines[0].startswith("HTTP/"):
        return ["no HTTP response printed"]
    status, headers, body = _parse_http(expected_lines)
    got_status, got_headers, got_body = _parse_http(actual_lines)
    problems = []
    if status != got_status:
        problems.append(f"status line {got_status!r}, the document says {status!r}")
    answered = dict(got_headers)
    for name, value in headers:
        if name not in answered:
            problems.append(f"no {name} header")
        elif name != "etag" and normalise(answered[name]) != normalise(value):
            problems.append(f"{name}: {answered[name]!r}, the document says {value!r}")
    if not _same_body(body, got_body):
        problems.append("body differs")
    return problems


def report(example: Example, actual: str, errors: str, problems: list[str]) -> str:
    return (f"{example.where}: $ {example.command}\n  " + "; ".join(problems)
            + "\n  the document says:\n" + _indent(normalise("\n".join(example.expected)))
            + "\n  it printed:\n" + _indent(normalise(actual.rstrip("\n")))
            + ("\n  and on stderr:\n" + _indent(errors.rstrip("\n")) if errors.strip() else ""))


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.split("\n"))


def check(path: Path) -> list[str]:
    """Runs the file's examples against a fresh `make run`; one report per failing example."""
    items = examples(path)
    with local_service(DEFAULTS) as run:
        outputs = run_all(items, run.env)
    reports = [report(example, actual, errors, problems)
               for example, (actual, errors) in zip(items, outputs)
               if (problems := differences(example, actual))]
    if reports:
        reports.append("make run's output, the last lines:\n" + _indent("\n".join(run.output.splitlines()[-30:])))
    return reports


def updated_output(example: Example, actual: str) -> list[str]:
    actual_lines = actual.rstrip("\n").split("\n") if actual.strip() else []
    if not (example.expected and example.expected[0].startswith("HTTP/") and actual_lines
            and actual_lines[0].startswith("HTTP/")):
        return actual_lines
    _, shown, _ = _parse_http(example.expected)
    status, headers, body = _parse_http(actual_lines)
    names = {name: value for name, value in headers}
    kept = [line for line in example.expected[1:1 + len(shown)]
            if _HEADER.match(line).group(1).lower() in names]
    lines = [status] + [f"{_HEADER.match(line).group(1)}: {names[_HEADER.match(line).group(1).lower()]}"
                        for line in kept]
    blank = len(example.expected) > 1 + len(shown) and not example.expected[1 + len(shown)].strip()
    return lines + ([""] if blank else []) + body.split("\n")


def update(path: Path) -> int:
    items = examples(path)
    with local_service(DEFAULTS) as run:
        outputs = run_all(items, run.env)
    lines = path.read_text(encoding="utf-8").splitlines()
    changed = 0
    for example, (actual, _) in reversed(list(zip(items, outputs))):
        if not differences(example, actual):  # holds: left as written, times and all
            continue
        start, end = example.output_lines
        new = updated_output(example, actual)
        if lines[start:end] != new:
            lines[start:end] = new
            changed += 1
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return changed


def main() -> int:
    parser = argparse.ArgumentParser(description="Run (or --update) the console examples of Markdown files.")
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--update", action="store_true", help="rewrite the expected outputs from a run")
    args = parser.parse_args()
    failed = 0
    for file in args.files:
        path = file.resolve()
        if args.update:
            print(f"{file}: {update(path)} example outputs rewritten")
            continue
        problems = check(path)
        failed += len(problems)
        print("\n\n".join(problems) if problems else f"{file}: every example holds")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
