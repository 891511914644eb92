"""The event samples of docs/events.md and their check against real events: every ```json block
under a heading that names an event type (todo.x.y) is a sample of that type; a sample must have
exactly the keys of the real events at every level, with the same JSON types (null standing for a
value that may be null)."""

import os
import re

from todo_test import SOURCE_DIR

EVENTS_DOC = os.path.join(SOURCE_DIR, "docs", "events.md")

# Fields of the task snapshot that may be null, and their type when they are not.
NULLABLE = {"category": "object", "due_at": "string", "remind_at": "string",
            "remind_before_minutes": "integer", "recurrence_rule": "string",
            "series_id": "string", "occurrence": "integer", "series_start_at": "string",
            "completed_at": "string", "color": "string", "category_id": "integer"}

# What the sidecar adds to a CloudEvent it publishes (DAPR-CONTRACT §1.3): not the producer's.
SIDECAR_KEYS = ("topic", "pubsubname", "traceid", "tracestate", "expiration")


def as_produced(event):
    """A delivered event without the attributes the sidecar added."""
    return {k: v for k, v in event.items() if k not in SIDECAR_KEYS}


def json_type(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def shape_errors(sample, actuals, path="event"):
    """Where sample differs in keys or value types from every one of actuals (values the backend
    wrote at the same place)."""
    errors = []
    leaf = path.rsplit(".", 1)[-1].split("[")[0]
    seen = {json_type(a) for a in actuals}
    st = json_type(sample)
    allowed = set(seen)
    if leaf in NULLABLE:
        allowed |= {"null", NULLABLE[leaf]}
    if st not in allowed:
        return [f"{path}: the sample has {st}, the backend writes {sorted(seen)}"]
    if st == "object":
        objects = [a for a in actuals if isinstance(a, dict)]
        if not objects:
            return [f"{path}: the backend never wrote an object here to compare with"]
        for a in objects:
            if set(a) != set(sample):
                errors.append(f"{path}: keys differ: the sample has "
                              f"{sorted(set(sample) - set(a))} more and "
                              f"{sorted(set(a) - set(sample))} fewer than the backend")
                break
        for k, v in sample.items():
            values = [a[k] for a in objects if k in a]
            if values:
                errors += shape_errors(v, values, f"{path}.{k}")
    elif st == "array":
        elements = [e for a in actuals if isinstance(a, list) for e in a]
        for i, v in enumerate(sample):
            if not elements:
                errors.append(f"{path}[{i}]: the backend never wrote an element here")
                break
            errors += shape_errors(v, elements, f"{path}[{i}]")
    return errors


def doc_samples(text):
    """{event type: [sample]} from the ```json blocks under headings naming a task event type."""
    samples = {}
    current = None
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if line.startswith("#"):
            m = re.search(r"todo\.[a-z]+\.[a-z_]+", line)
            current = m.group(0) if m else None
        elif line.startswith("```json"):
            block = []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith("```"):
                block.append(lines[i])
                i += 1
            if current:
                samples.setdefault(current, []).append("\n".join(block))
        i += 1
    return samples


def samples_of(event_type):
    """The parsed samples of event_type in docs/events.md."""
    import json
    with open(EVENTS_DOC) as f:
        return [json.loads(s) for s in doc_samples(f.read()).get(event_type, [])]


def check_against_samples(testcase, event_type, events):
    """Fails testcase unless docs/events.md has a sample of event_type with the shape of events
    (real CloudEvents, as dicts)."""
    samples = samples_of(event_type)
    testcase.assertTrue(samples, f"docs/events.md has no sample of {event_type}")
    testcase.assertTrue(events, f"no {event_type} event to compare the sample with")
    for sample in samples:
        problems = shape_errors(sample, events)
        testcase.assertEqual(problems, [], f"{event_type}: the sample differs from the events")
