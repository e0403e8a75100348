"""Every console example in the README and in docs/ prints what the document says, against a
fresh `make run` (the format and the normalising: tests/console_examples.py)."""
from __future__ import annotations

import re

import pytest

from console_examples import ROOT, check, examples

DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("document", [d for d in DOCUMENTS if examples(d)],
                         ids=lambda d: str(d.relative_to(ROOT)))
def test_every_console_example_prints_what_the_document_says(document):
    problems = check(document)
    assert not problems, ("\n\n".join(problems) + "\n\nIf the service's answer is the right one, take it with "
                          f"`.venv/bin/python tests/console_examples.py --update {document.relative_to(ROOT)}` "
                          "and read the diff.")


def test_the_readme_has_console_examples_to_check():
    assert len(examples(ROOT / "README.md")) >= 10


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda d: str(d.relative_to(ROOT)))
def test_every_link_stays_inside_the_repository_and_finds_its_target(document):
    text = document.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"https?://", target):
            continue
        path, _, anchor = target.partition("#")
        resolved = (document.parent / path).resolve() if path else document
        assert resolved.is_relative_to(ROOT), f"{target} points outside the repository"
        assert resolved.exists(), f"{target}: no such file"
        if anchor and resolved.suffix == ".md":
            headings = re.findall(r"(?m)^#+ (.+)$", resolved.read_text(encoding="utf-8"))
            assert anchor in {_anchor(h) for h in headings}, f"{target}: no such heading"
