"""List cursors are opaque and tamper-evident."""
import pytest

from chalicelib import cursors
from chalicelib.incidents import InvalidInput

FILTERS = {"status": "new", "source": None}


def test_a_cursor_round_trips_for_the_same_filters():
    token = cursors.encode("2026-11-23T10:15:30.123Z#00000000000000000042", FILTERS)
    assert cursors.decode(token, FILTERS) == "2026-11-23T10:15:30.123Z#00000000000000000042"


@pytest.mark.parametrize("token", ["", "abc", "abc.def", "..", "ж.ж", "eyJwIjoiIn0.AAAA"])
def test_a_cursor_not_issued_by_the_service_is_refused(token):
    with pytest.raises(InvalidInput, match="not issued by this service"):
        cursors.decode(token, FILTERS)


def test_a_cursor_with_a_changed_position_is_refused():
    token = cursors.encode("2026-11-23T10:15:30.123Z#00000000000000000042", FILTERS)
    payload, signature = token.split(".")
    forged = cursors.encode("9999", FILTERS).split(".")[0] + "." + signature
    with pytest.raises(InvalidInput, match="not issued"):
        cursors.decode(forged, FILTERS)


def test_a_cursor_used_with_other_filters_is_refused():
    token = cursors.encode("x", FILTERS)
    with pytest.raises(InvalidInput, match="other filters"):
        cursors.decode(token, {"status": "closed", "source": None})


def test_a_signed_cursor_must_hold_a_position_of_the_shape_the_service_issues():
    real = "2026-11-23T10:15:30.123Z#00000000000000000042"
    assert cursors.decode(cursors.encode(real, FILTERS), FILTERS, cursors.LIST_POSITION) == real
    for forged in ("x" * 1500, real + "x", "2026-11-23T10:15:30.123Z#42", "history#" + real[:24], ""):
        with pytest.raises(InvalidInput, match="not issued"):
            cursors.decode(cursors.encode(forged, FILTERS), FILTERS, cursors.LIST_POSITION)
    for entry in ("history#2026-11-23T10:15:30.123Z", "history#2026-11-23T10:15:30.123Z#2"):
        assert cursors.decode(cursors.encode(entry, FILTERS), FILTERS, cursors.HISTORY_POSITION) == entry
    with pytest.raises(InvalidInput, match="not issued"):
        cursors.decode(cursors.encode(real, FILTERS), FILTERS, cursors.HISTORY_POSITION)


def test_an_overlong_cursor_is_refused_before_it_is_decoded():
    with pytest.raises(InvalidInput, match="not issued"):
        cursors.decode("a" * (cursors.MAX_CURSOR + 1), FILTERS)


def test_without_a_configured_key_each_process_signs_with_its_own_random_key(monkeypatch):
    import subprocess
    import sys

    monkeypatch.delenv("CURSOR_SECRET", raising=False)
    monkeypatch.delenv("CURSOR_SECRET_PARAMETER", raising=False)
    script = ("from chalicelib import cursors; "
              "print(cursors.encode('2026-11-23T10:15:30.123Z#00000000000000000042', "
              "{'status': 'new', 'source': None}))")
    other = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                           cwd=cursors.__file__.rsplit("/chalicelib/", 1)[0]).stdout.strip()
    with pytest.raises(InvalidInput, match="not issued"):
        cursors.decode(other, FILTERS)
    mine = cursors.encode("2026-11-23T10:15:30.123Z#00000000000000000042", FILTERS)
    assert cursors.decode(mine, FILTERS, cursors.LIST_POSITION)
