#!/usr/bin/env python3
"""Checks GPT-Live events against the `openai` Python package's typed models (the vendor's SDK,
`openai.types.live`): every line of the JSONL file given is {"dir": "client"|"server",
"event": {...}}; each event must validate as a ClientEvent / ServerEvent and carry no field the
models do not declare (at any depth). Exit 0 when all pass; 1 with the failures listed; 2 when
the SDK is not installed."""
import json
import sys

try:
    from pydantic import BaseModel, TypeAdapter
    from openai.types.live import ClientEvent, ServerEvent
except ImportError as e:  # pragma: no cover
    print(f"openai SDK not installed: {e}", file=sys.stderr)
    sys.exit(2)


def extras(model, path="event"):
    """Fields present in the data that the SDK model does not declare."""
    found = []
    if isinstance(model, BaseModel):
        for key in (model.model_extra or {}):
            found.append(f"{path}.{key}")
        for name in type(model).model_fields:
            found += extras(getattr(model, name), f"{path}.{name}")
    elif isinstance(model, list):
        for i, item in enumerate(model):
            found += extras(item, f"{path}[{i}]")
    return found


def main(path):
    adapters = {"client": TypeAdapter(ClientEvent), "server": TypeAdapter(ServerEvent)}
    failures, checked = [], 0
    for n, line in enumerate(open(path), 1):
        line = line.strip()
        if not line:
            continue
        entry = json.loads(line)
        event = entry["event"]
        try:
            model = adapters[entry["dir"]].validate_python(event)
        except Exception as e:  # pydantic's ValidationError, with what failed
            failures.append(f"line {n} ({entry['dir']} {event.get('type')}): {e}")
            continue
        # Free-form payloads (a Responses event inside `response.event`, JSON Schema parameters)
        # are dicts in the SDK: nothing to compare there.
        unknown = extras(model)
        if unknown:
            failures.append(f"line {n} ({entry['dir']} {event.get('type')}): undeclared {unknown}")
        checked += 1
    for f in failures:
        print(f)
    print(f"{checked} events match the SDK, {len(failures)} do not")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
