#!/usr/bin/env python3
"""Checks GPT-Live events against the `openai` Python package's typed models (the vendor's SDK,
`openai.types.live`): every line of the JSONL file given is {"dir": "client"|"server",
"event": {...}}; each event must validate as a ClientEvent / ServerEvent and carry no field the
models do not declare (at any depth). Exit 0 when all pass; 1 with the failures listed; 2 when
the SDK is not installed."""
import json
import sys

try:
    from pydantic import TypeAdapter
    from sdk_models import extras
    from openai.types.live import ClientEvent, ServerEvent
except ImportError as e:  # pragma: no cover
    print(f"openai SDK not installed: {e}", file=sys.stderr)
    sys.exit(2)


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
        unknown = extras(model, "event")
        if unknown:
            failures.append(f"line {n} ({entry['dir']} {event.get('type')}): undeclared {unknown}")
        checked += 1
    for f in failures:
        print(f)
    print(f"{checked} events match the SDK, {len(failures)} do not")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
