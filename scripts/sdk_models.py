"""Shared by the SDK oracles (`check_live_events.py`, `check_responses_shapes.py`): the fields a
value carries that the vendor's pydantic models do not declare, at any depth."""
from pydantic import BaseModel


def extras(model, path):
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
