import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "reference"))

from warm import API_KEY, load_reference, reset_db  # noqa: E402


@pytest.fixture
def client():
    from fastapi.testclient import TestClient

    reference = load_reference()
    reset_db(reference)
    with TestClient(reference.app, headers={"x-api-key": API_KEY}) as client:
        yield client
