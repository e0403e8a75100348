"""Every console example in the README and in docs/ prints what the document says, against a
fresh `make run` (the format and the normalising: tests/console_examples.py)."""
from __future__ import annotations

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
