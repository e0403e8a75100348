#!/usr/bin/env bash
# Debian's chromium for the /docs browser test (tests/test_docs_page.py), installed only when
# missing and only where apt can install it. Never fails: without chromium that test skips.
set -u
CHROMIUM=/usr/bin/chromium
if [ -x "$CHROMIUM" ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure_chromium: no apt-get here; the browser test will skip" >&2
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo -n"
    if ! $SUDO true 2>/dev/null; then
        echo "ensure_chromium: not root and no passwordless sudo; the browser test will skip" >&2
        exit 0
    fi
else
    SUDO=""
fi
echo "ensure_chromium: installing Debian's chromium (once) for the /docs browser test" >&2
if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null; }; then
    echo "ensure_chromium: apt-get could not install chromium; the browser test will skip" >&2
fi
exit 0
