"""The embedded DynamoDB of everything local (`make run`, the tests, the bench, `make say`):
moto, with costs that follow DynamoDB's (shim.py) and data kept as items (persist.py).
Never shipped to Lambda: only app.py and chalicelib/ are packaged."""
