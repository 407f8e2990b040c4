"""The discovery-document validator is sound: real Gmail captures pass it,
and each kind of deviation fails it. (Every other Gmail test validates the
sandbox's answers with it.)"""

from __future__ import annotations

import copy
import json

import pytest

from tests.sandbox.google.discovery_schema import SAMPLES, SchemaError

CAPTURES = {
    "gmail_message_full_plaintext.json": "Message",
    "gmail_message_full_multipart_alternative.json": "Message",
    "gmail_message_full_plaintext_attachment.json": "Message",
    "gmail_message_full_with_attachments.json": "Message",
    "gmail_draft_get_full.json": "Draft",
    "gmail_history_list_thirdparty_handwritten.json": "ListHistoryResponse",
}


@pytest.mark.parametrize("sample", sorted(CAPTURES))
def test_real_captures_validate(discovery, sample):
    discovery.validate(json.loads((SAMPLES / sample).read_text()), CAPTURES[sample])


def _capture() -> dict:
    return json.loads((SAMPLES / "gmail_message_full_with_attachments.json").read_text())


@pytest.mark.parametrize(
    "breakage, message",
    [
        (lambda m: m.update(historyId=694319), "expected a string"),  # uint64 travels as a string
        (lambda m: m.update(internalDate="14511x"), "decimal string"),
        (lambda m: m.update(sizeEstimate="641"), "expected an integer"),
        (lambda m: m["payload"]["parts"][0]["parts"][0]["body"].update(data="Y29v+CAq/3R1"), "not base64url"),
        (lambda m: m["payload"]["parts"][0]["parts"][0]["body"].update(size=2**31), "out of int32"),
        (lambda m: m["payload"]["headers"].append({"name": "X", "value": 1}), "expected a string"),
        (lambda m: m.update(labelIds="INBOX"), "expected an array"),
        (lambda m: m.update(isRead=True), "unknown property"),
        (lambda m: m["payload"].update(parts={}), "expected an array"),
    ],
)
def test_validator_rejects_deviations(discovery, breakage, message):
    broken = copy.deepcopy(_capture())
    breakage(broken)
    with pytest.raises(SchemaError, match=message):
        discovery.validate(broken, "Message")


def test_validator_checks_enums_and_unknown_schemas(discovery):
    discovery.validate({"topicName": "projects/p/topics/t", "labelFilterBehavior": "include"}, "WatchRequest")
    with pytest.raises(SchemaError, match="not one of"):
        discovery.validate({"labelFilterBehavior": "INCLUDE"}, "WatchRequest")
    with pytest.raises(KeyError):
        discovery.validate({}, "NoSuchSchema")
