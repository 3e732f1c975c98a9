#!/usr/bin/env python3
"""Checks a post-call analysis exchange against the `openai` Python package's typed models (the
vendor's SDK, `openai.types.responses`): the JSON file given is {"request": {...}, "response":
{...}}; the request must validate as ResponseCreateParamsNonStreaming with no key the SDK does
not declare, the response (what the test's fake answers) as Response with no undeclared field.
Exit 0 when both pass; 1 with the failures listed; 2 when the SDK is not installed."""
import json
import sys
import typing

try:
    from pydantic import TypeAdapter
    from sdk_models import extras
    from openai.types.responses import Response
    from openai.types.responses.response_create_params import ResponseCreateParamsNonStreaming
except ImportError as e:  # pragma: no cover
    print(f"openai SDK not installed: {e}", file=sys.stderr)
    sys.exit(2)


def main(path):
    exchange = json.load(open(path))
    failures = []
    request = exchange["request"]
    declared = set(typing.get_type_hints(ResponseCreateParamsNonStreaming).keys())
    unknown = sorted(set(request) - declared)
    if unknown:
        failures.append(f"request: keys the SDK does not declare: {unknown}")
    try:
        TypeAdapter(ResponseCreateParamsNonStreaming).validate_python(request)
    except Exception as e:
        failures.append(f"request: {e}")
    try:
        model = Response.model_validate(exchange["response"])
        undeclared = extras(model, "response")
        if undeclared:
            failures.append(f"response: undeclared {undeclared}")
    except Exception as e:
        failures.append(f"response: {e}")
    for f in failures:
        print(f)
    print(f"checked the request and the response: {len(failures)} failure(s)")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main(sys.argv[1])
