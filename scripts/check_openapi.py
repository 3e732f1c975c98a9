#!/usr/bin/env python3
"""Validates an OpenAPI document (JSON file) as OpenAPI 3.1 with openapi-spec-validator.

Exit 0: valid; 1: invalid (each error printed with its path); 2: the validator is not installed.
"""
import json
import sys

try:
    from openapi_spec_validator import OpenAPIV31SpecValidator
except ImportError:
    print("openapi-spec-validator is not installed", file=sys.stderr)
    sys.exit(2)

doc = json.load(open(sys.argv[1]))
errors = list(OpenAPIV31SpecValidator(doc).iter_errors())
for e in errors:
    print(f"{'/'.join(str(p) for p in e.path)}: {e.message}")
print(f"{len(errors)} errors")
sys.exit(1 if errors else 0)
