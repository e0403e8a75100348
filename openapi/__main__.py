"""python -m openapi [--check]: writes chalicelib/openapi.json from openapi/document.py, or with
--check exits 1 when the file is not what the builder makes now."""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from chalicelib.openapi import DOCUMENT_PATH  # noqa: E402
from openapi.document import build_document  # noqa: E402


def document_text() -> str:
    # Compact: the file ships in the Lambda package, and its size counts there.
    return json.dumps(build_document(), ensure_ascii=False, separators=(",", ":")) + "\n"


def main(argv: list[str]) -> int:
    text = document_text()
    if argv == ["--check"]:
        current = DOCUMENT_PATH.read_text(encoding="utf-8") if DOCUMENT_PATH.exists() else ""
        if current != text:
            print(f"{DOCUMENT_PATH.relative_to(ROOT)} is out of date: run make openapi", file=sys.stderr)
            return 1
        return 0
    DOCUMENT_PATH.write_text(text, encoding="utf-8")
    print(f"wrote {DOCUMENT_PATH.relative_to(ROOT)} ({len(text.encode())} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
