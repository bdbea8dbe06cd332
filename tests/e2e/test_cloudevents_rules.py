"""CloudEvents rules at publish (docs/api.md, "Validation"): source must be
a URI-reference, dataschema an absolute URI, datacontenttype a media type,
each refused with the rule in the message, in structured, batch and binary
mode; topic and offset are herald's read-side names and are refused rather
than overwritten; a binary-mode event of 64 KiB is accepted whatever its
split between ce- headers and body at the default --header-max."""
import json

import pytest

from conftest import CE_BATCH, CE_JSON, per_test_timeout, structured

_timeout = per_test_timeout(60)


def error_of(r, status=400):
    assert r.status_code == status, (r.status_code, r.text)
    return r.json()["error"]


BAD = [
    ({"source": "/a b"}, "attribute 'source' must be a URI-reference (RFC 3986 section 4.1): a space"),
    ({"source": "http://[::1"}, "attribute 'source' must be a URI-reference (RFC 3986 section 4.1): an IP literal"),
    ({"source": "1x:y"}, "attribute 'source' must be a URI-reference"),
    ({"dataschema": "/schemas/a.json"}, "attribute 'dataschema' must be an absolute URI (RFC 3986 section 4.3)"),
    ({"dataschema": "https://x/s#frag"}, "an absolute URI has no fragment"),
    ({"datacontenttype": "json"}, "attribute 'datacontenttype' must be a media type (RFC 2045 section 5.1"),
    ({"datacontenttype": "text/plain; charset"}, "a parameter must be name=value"),
]


@pytest.mark.parametrize("attrs,message", BAD, ids=[m.split(":")[0] + str(i) for i, (a, m) in enumerate(BAD)])
def test_structured_grammar_refusals(herald, attrs, message):
    ev = structured("g-1")
    ev.update(attrs)
    err = error_of(herald.publish("rules", json.dumps(ev), headers=CE_JSON))
    assert err["code"] == "invalid_event" and message in err["message"], err


def test_valid_values_are_accepted_as_sent(herald):
    ev = structured("ok-1", source="urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66",
                    dataschema="https://example.com/schemas/order.json",
                    datacontenttype='application/json; charset="utf-8"', data={"a": 1})
    r = herald.publish("rules-ok", json.dumps(ev), headers=CE_JSON)
    assert r.status_code == 201, r.text
    got = herald.read("rules-ok").json()["events"][0]
    for k in ("source", "dataschema", "datacontenttype"):
        assert got[k] == ev[k]


def test_batch_entries_are_checked_one_by_one(herald):
    batch = [structured("b-1"), structured("b-2", source="/x y"), structured("b-3", offset=3)]
    r = herald.publish("rules-batch", json.dumps(batch), headers=CE_BATCH)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["failed_count"] == 2 and body["entries"][0] == {"offset": 1, "id": "b-1"}
    assert "URI-reference" in body["entries"][1]["error"]["message"]
    assert "attribute 'offset' is reserved" in body["entries"][2]["error"]["message"]
    ids = [e["id"] for e in herald.read("rules-batch").json()["events"]]
    assert ids == ["b-1"]


def test_binary_mode_rules(herald):
    base = {"ce-specversion": "1.0", "ce-id": "bin-1", "ce-source": "/bin", "ce-type": "t"}
    cases = [
        ({"ce-source": "/a%20b"}, "attribute 'source' must be a URI-reference"),  # decoded once: "/a b"
        ({"ce-dataschema": "s.json"}, "attribute 'dataschema' must be an absolute URI"),
        ({"ce-topic": "elsewhere"}, "attribute 'topic' is reserved"),
        ({"ce-offset": "9"}, "attribute 'offset' is reserved"),
        ({"Content-Type": "nonsense"}, "must be a media type"),
    ]
    for extra, message in cases:
        h = dict(base, **{"Content-Type": "text/plain"})
        h.update(extra)
        err = error_of(herald.publish("rules-bin", "x", headers=h))
        assert message in err["message"], (extra, err)
    # A percent-encoded '%' keeps a valid pct-encoded source.
    h = dict(base, **{"ce-source": "/a%2520b", "Content-Type": "text/plain"})
    r = herald.publish("rules-bin", "x", headers=h)
    assert r.status_code == 201, r.text
    assert herald.read("rules-bin").json()["events"][0]["source"] == "/a%20b"


@pytest.mark.parametrize("in_headers", [0, 30 * 1024, 63 * 1024])
def test_binary_event_of_64k_whatever_the_header_split(herald, in_headers):
    """CloudEvents: intermediaries must forward events of 64 KiB or less.
    The default --header-max (72k) takes a 64 KiB event even when nearly
    all of it is in ce- headers."""
    total = 64 * 1024 - 600  # the JSON members herald adds stay inside 64 KiB
    h = {"ce-specversion": "1.0", "ce-id": f"big-{in_headers}", "ce-source": "/big", "ce-type": "t",
         "Content-Type": "text/plain"}
    if in_headers:
        h["ce-blob"] = "a" * in_headers
    body = "b" * (total - in_headers)
    r = herald.publish("big", body, headers=h)
    assert r.status_code == 201, (r.status_code, r.text[:200])
    got = [e for e in herald.read("big").json()["events"] if e["id"] == f"big-{in_headers}"][0]
    assert len(got.get("blob", "")) == in_headers and len(got["data"]) == total - in_headers
