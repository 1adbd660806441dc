"""Record builders and schema access for every gar-streams topic (see docs/topics.md)."""

from streams.schema.records import (
    SCHEMA_VERSION,
    bounded_key,
    completion_record,
    dead_letter_key,
    dead_letter_record,
    decision_record,
    dispatch_record,
    encode,
    encode_decision,
    intensity_record,
    request_record,
    shrink_dead_letter,
    source_dict,
)
from streams.schema.validation import (
    TOPIC_SCHEMAS,
    load_schema,
    schema_path,
    validation_errors,
    validator,
)

__all__ = [
    "SCHEMA_VERSION",
    "TOPIC_SCHEMAS",
    "bounded_key",
    "completion_record",
    "dead_letter_key",
    "dead_letter_record",
    "decision_record",
    "dispatch_record",
    "encode",
    "encode_decision",
    "intensity_record",
    "load_schema",
    "request_record",
    "schema_path",
    "shrink_dead_letter",
    "source_dict",
    "validation_errors",
    "validator",
]
