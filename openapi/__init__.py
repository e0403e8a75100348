"""The OpenAPI document's source. It is not shipped: `make openapi` (python -m openapi) builds
chalicelib/openapi.json from it, and the service serves that file."""
