"""Publishing through the REST API (docs/api.md, "Publish"): every mode, the
CloudEvents 1.0 validation rules with the message a user gets for each, and
topic names, as a client sees them through python requests and raw sockets."""
import base64
import datetime
import json
import re

import pytest
import requests

from conftest import CE_BATCH, CE_JSON, RawConn, http_request, per_test_timeout, structured

_timeout = per_test_timeout(30)

RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def only_event(herald, topic):
    """The topic's single stored event, as JSON text and as a dict."""
    r = herald.read(topic)
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["events"]) == 1, body
    return body["events"][0]


def event_text(raw_read_text):
    """The first event object of a read answer, as herald sent it."""
    assert raw_read_text.startswith('{"events":[{'), raw_read_text
    depth, start = 0, len('{"events":[')
    for i in range(start, len(raw_read_text)):
        c = raw_read_text[i]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return raw_read_text[start:i + 1]
    raise AssertionError(raw_read_text)


def assert_error(r, status, code, message_part):
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["Content-Type"].startswith("application/json")
    err = r.json()["error"]
    assert err["code"] == code, err
    assert message_part in err["message"], err


def assert_topic_absent(herald, topic):
    r = herald.session.get(herald.topic_url(topic, ""), timeout=10)
    assert r.status_code == 404, r.text


# ---- structured mode ------------------------------------------------------

def test_structured_publish_answers_201_with_topic_offset_and_id(herald):
    r = herald.publish("orders", json.dumps(structured("e-1")), headers=CE_JSON)
    assert r.status_code == 201, r.text
    assert r.json() == {"topic": "orders", "offset": 1, "id": "e-1"}
    r = herald.publish("orders", json.dumps(structured("e-2")), headers=CE_JSON)
    assert r.status_code == 201 and r.json()["offset"] == 2
    ev = herald.read("orders").json()["events"]
    assert [(e["id"], e["offset"], e["topic"]) for e in ev] == [("e-1", 1, "orders"), ("e-2", 2, "orders")]


def test_structured_pretty_printed_event_is_stored_compactly(herald):
    pretty = """{
        "specversion" : "1.0",
        "id"          : "p-1",
        "source"      : "/pretty",
        "type"        : "com.example.pretty",
        "subject"     : "two  spaces stay",
        "time"        : "2024-05-01T12:00:00.5+02:00",
        "data"        : {
            "list" : [ 1 , 2 ,
                       3 ],
            "text" : "a b\\nc"
        }
    }"""
    r = herald.publish("pretty", pretty, headers=CE_JSON)
    assert r.status_code == 201, r.text
    text = event_text(herald.read("pretty").text)
    assert text == ('{"specversion":"1.0","id":"p-1","source":"/pretty","type":"com.example.pretty",'
                    '"subject":"two  spaces stay","time":"2024-05-01T12:00:00.5+02:00",'
                    '"data":{"list":[1,2,3],"text":"a b\\nc"},"topic":"pretty","offset":1}')


def test_structured_data_numbers_come_back_byte_exact(herald):
    body = ('{"specversion":"1.0","id":"n-1","source":"/n","type":"t",'
            '"data":{"big":12345678901234567890,"tenth":0.1,"exp":1.50E+300,"neg":-0.0,"list":[0.10,1e-7]}}')
    r = herald.publish("numbers", body, headers=CE_JSON)
    assert r.status_code == 201, r.text
    raw = herald.read("numbers").text
    assert '"data":{"big":12345678901234567890,"tenth":0.1,"exp":1.50E+300,"neg":-0.0,"list":[0.10,1e-7]}' in raw
    # A bare big number as the whole data survives too.
    body = '{"specversion":"1.0","id":"n-2","source":"/n","type":"t","data":12345678901234567890}'
    assert herald.publish("numbers", body, headers=CE_JSON).status_code == 201
    assert '"data":12345678901234567890,' in herald.read("numbers", after=1).text


def test_structured_event_without_time_gets_the_publish_time(herald):
    before = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=2)
    assert herald.publish("clock", json.dumps(structured("t-1")), headers=CE_JSON).status_code == 201
    after = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=2)
    ev = only_event(herald, "clock")
    assert RFC3339_MS.match(ev["time"]), ev["time"]
    t = datetime.datetime.fromisoformat(ev["time"].replace("Z", "+00:00"))
    assert before <= t <= after


def test_structured_extensions_subject_and_null_attributes(herald):
    ev = structured("x-1", subject="s", dataschema="https://example.com/schema",
                    datacontenttype="application/json", traceparent="00-abc", count=42, flag=True,
                    dropped=None, data={"k": "v"})
    assert herald.publish("ext", json.dumps(ev), headers=CE_JSON).status_code == 201
    got = only_event(herald, "ext")
    for k in ("subject", "dataschema", "datacontenttype", "traceparent", "count", "flag", "data"):
        assert got[k] == ev[k], k
    assert "dropped" not in got  # null unsets an attribute


def test_structured_topic_and_offset_members_are_refused(herald):
    """herald adds topic and offset on read: a producer's own would be lost,
    so they are refused at publish (docs/api.md) rather than overwritten."""
    for name in ("topic", "offset"):
        ev = structured("own-1", **{name: "elsewhere"})
        r = herald.publish("mine", json.dumps(ev), headers=CE_JSON)
        assert_error(r, 400, "invalid_event", f"attribute '{name}' is reserved")
    assert_topic_absent(herald, "mine")
    # null unsets an attribute: accepted, and herald's own are set.
    r = herald.publish("mine", json.dumps(structured("own-2", topic=None)), headers=CE_JSON)
    assert r.status_code == 201, r.text
    got = only_event(herald, "mine")
    assert got["topic"] == "mine" and got["offset"] == 1


def test_structured_data_base64_is_kept(herald):
    ev = structured("b64-1", data_base64=base64.b64encode(b"\x00\x01\xfe\xff").decode())
    assert herald.publish("b64", json.dumps(ev), headers=CE_JSON).status_code == 201
    got = only_event(herald, "b64")
    assert base64.b64decode(got["data_base64"]) == b"\x00\x01\xfe\xff"
    assert "data" not in got


def test_structured_unsupported_event_format_is_415(herald):
    r = herald.publish("fmt", "<event/>", headers={"Content-Type": "application/cloudevents+xml"})
    assert_error(r, 415, "unsupported_media_type", "application/cloudevents+json")
    assert_topic_absent(herald, "fmt")


# ---- validation errors ----------------------------------------------------

def _without(key):
    ev = structured("v-1")
    del ev[key]
    return json.dumps(ev)


INVALID_EVENTS = {
    "missing_id": (_without("id"), "missing required attribute 'id'"),
    "missing_source": (_without("source"), "missing required attribute 'source'"),
    "missing_type": (_without("type"), "missing required attribute 'type'"),
    "missing_specversion": (_without("specversion"), "missing required attribute 'specversion'"),
    "specversion_0_3": (json.dumps(structured("v-1", specversion="0.3")),
                        "attribute 'specversion' must be \"1.0\""),
    "specversion_number": ('{"specversion":1.0,"id":"v","source":"/s","type":"t"}',
                           "attribute 'specversion' must be \"1.0\""),
    "empty_id": (json.dumps(structured("")), "attribute 'id' must not be empty"),
    "id_not_string": ('{"specversion":"1.0","id":7,"source":"/s","type":"t"}',
                      "attribute 'id' must be a string"),
    "upper_case_name": (json.dumps(structured("v-1", Foo="x")),
                        "attribute name 'Foo' must be 1-20 lower-case letters or digits"),
    "underscore_name": (json.dumps(structured("v-1", a_b="x")),
                        "attribute name 'a_b' must be 1-20 lower-case letters or digits"),
    "name_21_chars": (json.dumps(structured("v-1", **{"a" * 21: "x"})),
                      "attribute name '%s' must be 1-20 lower-case letters or digits" % ("a" * 21)),
    "empty_name": ('{"specversion":"1.0","id":"v","source":"/s","type":"t","":1}',
                   "attribute name '' must be 1-20"),
    "data_twice": ('{"specversion":"1.0","id":"v","source":"/s","type":"t","data":1,"data":2}',
                   "event has more than one 'data' member"),
    "duplicate_attribute": ('{"specversion":"1.0","id":"v","id":"w","source":"/s","type":"t"}',
                            "event has more than one 'id' member"),
    "bad_time": (json.dumps(structured("v-1", time="yesterday")),
                 "attribute 'time' is not an RFC 3339 timestamp"),
    "time_month_13": (json.dumps(structured("v-1", time="2024-13-01T00:00:00Z")),
                      "attribute 'time' is not an RFC 3339 timestamp"),
    "time_without_zone": (json.dumps(structured("v-1", time="2024-01-01T00:00:00")),
                          "attribute 'time' is not an RFC 3339 timestamp"),
    "data_and_data_base64": (json.dumps(structured("v-1", data="x", data_base64="eA==")),
                             "event has both 'data' and 'data_base64'"),
    "bad_base64": (json.dumps(structured("v-1", data_base64="abc")), "'data_base64' is not valid base64"),
    "base64_bad_char": (json.dumps(structured("v-1", data_base64="ab!=")), "'data_base64' is not valid base64"),
    "not_json": ('{"specversion":"1.0",', "event is not valid JSON"),
    "trailing_garbage": (json.dumps(structured("v-1")) + " x", "event is not valid JSON"),
    "array_not_object": ("[]", "event must be a JSON object"),
    "empty_body": ("", "event is not valid JSON"),
    "extension_object": (json.dumps(structured("v-1", ext={"a": 1})),
                         "attribute 'ext' must be a string, an integer or a boolean"),
    "extension_int_overflow": (json.dumps(structured("v-1", big=2147483648)),
                               "attribute 'big' must be an integer from -2147483648 to 2147483647"),
    "control_char_in_subject": (json.dumps(structured("v-1", subject="a\u0001b")),
                                "attribute 'subject' contains the control character U+0001"),
}


@pytest.mark.parametrize("case", sorted(INVALID_EVENTS))
def test_invalid_structured_event_is_400_with_the_rule_broken(herald, case):
    body, message = INVALID_EVENTS[case]
    r = herald.publish("invalid", body, headers=CE_JSON)
    assert_error(r, 400, "invalid_event", message)
    assert_topic_absent(herald, "invalid")


# ---- binary mode ----------------------------------------------------------

def binary_headers(id_="b-1", **extra):
    h = {"ce-specversion": "1.0", "ce-id": id_, "ce-source": "/bin", "ce-type": "com.example.bin"}
    h.update(extra)
    return h


def test_binary_percent_encoded_header_values_are_decoded(herald):
    h = binary_headers(**{"ce-subject": "Euro%20%E2%82%AC", "ce-source": "%2Fsrc%3Fq%3D1",
                          "Content-Type": "text/plain"})
    r = herald.publish("bin", "x", headers=h)
    assert r.status_code == 201, r.text
    assert r.json() == {"topic": "bin", "offset": 1, "id": "b-1"}
    ev = only_event(herald, "bin")
    assert ev["subject"] == "Euro \u20ac"
    assert ev["source"] == "/src?q=1"
    assert ev["type"] == "com.example.bin" and ev["specversion"] == "1.0"


def test_binary_raw_printable_values_as_the_npm_sdk_sends_them(herald):
    # The npm cloudevents SDK puts attribute values into headers unencoded.
    h = binary_headers(**{"ce-source": "https://example.com/app?x=1&y=a-b",
                          "ce-subject": "100% sure, 50%off",
                          "ce-comment": "\"quoted \\\"value\\\"\"",
                          "ce-time": "2024-01-02T03:04:05.678Z",
                          "Content-Type": "application/json"})
    r = herald.publish("npm", '{"ok": true}', headers=h)
    assert r.status_code == 201, r.text
    ev = only_event(herald, "npm")
    assert ev["source"] == "https://example.com/app?x=1&y=a-b"
    assert ev["subject"] == "100% sure, 50%off"
    assert ev["comment"] == 'quoted "value"'
    assert ev["time"] == "2024-01-02T03:04:05.678Z"


def test_binary_json_body_becomes_json_data(herald):
    h = binary_headers(**{"Content-Type": "application/json; charset=utf-8"})
    r = herald.publish("bjson", '{ "n" : 12345678901234567890 ,\n "s": "x" }', headers=h)
    assert r.status_code == 201, r.text
    raw = herald.read("bjson").text
    assert '"data":{"n":12345678901234567890,"s":"x"}' in raw
    ev = json.loads(event_text(raw))
    assert ev["datacontenttype"] == "application/json; charset=utf-8"


def test_binary_vendor_json_body_becomes_json_data(herald):
    h = binary_headers(**{"Content-Type": "application/vnd.example+json"})
    assert herald.publish("bvnd", "[1, 2]", headers=h).status_code == 201
    assert only_event(herald, "bvnd")["data"] == [1, 2]


def test_binary_invalid_json_body_is_400(herald):
    h = binary_headers(**{"Content-Type": "application/json"})
    r = herald.publish("bjson-bad", "{not json", headers=h)
    assert_error(r, 400, "invalid_event", "body is not valid JSON")
    assert_topic_absent(herald, "bjson-bad")


def test_binary_text_body_becomes_a_string(herald):
    h = binary_headers(**{"Content-Type": "text/plain; charset=utf-8"})
    r = herald.publish("btext", "h\u00e9llo\nw\u00f6rld".encode(), headers=h)
    assert r.status_code == 201, r.text
    ev = only_event(herald, "btext")
    assert ev["data"] == "h\u00e9llo\nw\u00f6rld"
    assert ev["datacontenttype"] == "text/plain; charset=utf-8"
    assert "data_base64" not in ev


def test_binary_octet_stream_body_becomes_data_base64(herald):
    payload = bytes(range(256))
    h = binary_headers(**{"Content-Type": "application/octet-stream"})
    assert herald.publish("boct", payload, headers=h).status_code == 201
    ev = only_event(herald, "boct")
    assert base64.b64decode(ev["data_base64"]) == payload
    assert ev["datacontenttype"] == "application/octet-stream"
    assert "data" not in ev


def test_binary_empty_body_is_an_event_without_data(herald):
    r = herald.publish("bempty", b"", headers=binary_headers())
    assert r.status_code == 201, r.text
    ev = only_event(herald, "bempty")
    assert "data" not in ev and "data_base64" not in ev


def test_binary_missing_required_header_is_400(herald):
    h = binary_headers()
    del h["ce-type"]
    r = herald.publish("bmiss", "x", headers=h)
    assert_error(r, 400, "invalid_event", "binary-mode event is missing header 'ce-type'")
    assert_topic_absent(herald, "bmiss")


@pytest.mark.parametrize("header,value,message", [
    ("ce-Foo", "x", None),  # header names are case-insensitive: ce-foo is fine
    ("ce-a_b", "x", "attribute name 'a_b' must be 1-20 lower-case letters or digits"),
    ("ce-" + "a" * 21, "x", "attribute name '%s' must be 1-20" % ("a" * 21)),
    ("ce-data", "x", "header 'ce-data' is not allowed: the body is the data"),
    ("ce-datacontenttype", "text/plain", "header 'ce-datacontenttype' is not allowed"),
    ("ce-time", "not-a-time", "attribute 'time' is not an RFC 3339 timestamp"),
    ("ce-specversion", "0.3", "attribute 'specversion' must be \"1.0\""),
    ("ce-subject", "%FF%FE", "header 'ce-subject' is not valid UTF-8 after percent-decoding"),
])
def test_binary_bad_attribute_header_is_400(herald, header, value, message):
    h = binary_headers(**{header: value})
    r = herald.publish("battr", "x", headers=h)
    if message is None:
        assert r.status_code == 201, r.text
        assert only_event(herald, "battr")["foo"] == "x"
    else:
        assert_error(r, 400, "invalid_event", message)
        assert_topic_absent(herald, "battr")


# ---- raw mode -------------------------------------------------------------

def test_raw_json_body_is_completed_into_an_event(herald):
    r = herald.publish("raw", b'{"temp": 21.50, "big": 12345678901234567890}',
                       headers={"Content-Type": "application/json"})
    assert r.status_code == 201, r.text
    ans = r.json()
    assert ans["topic"] == "raw" and ans["offset"] == 1
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", ans["id"])
    raw = herald.read("raw").text
    assert '"data":{"temp":21.50,"big":12345678901234567890}' in raw
    ev = json.loads(event_text(raw))
    assert ev["id"] == ans["id"]
    assert ev["source"] == "/topics/raw" and ev["type"] == "herald.message"
    assert ev["specversion"] == "1.0" and ev["datacontenttype"] == "application/json"
    assert RFC3339_MS.match(ev["time"])


def test_raw_invalid_json_body_is_400(herald):
    r = herald.publish("raw-bad", b'{"a":', headers={"Content-Type": "application/json"})
    assert_error(r, 400, "invalid_event", "body is not valid JSON")
    assert_topic_absent(herald, "raw-bad")


def test_raw_text_body_becomes_a_string(herald):
    r = herald.publish("raw-text", "line 1\nline \u20ac".encode(), headers={"Content-Type": "text/plain"})
    assert r.status_code == 201, r.text
    ev = only_event(herald, "raw-text")
    assert ev["data"] == "line 1\nline \u20ac" and ev["datacontenttype"] == "text/plain"


def test_raw_binary_body_becomes_data_base64(herald):
    payload = b"\x89PNG\r\n\x1a\n\x00\xff"
    r = herald.publish("raw-bin", payload, headers={"Content-Type": "image/png"})
    assert r.status_code == 201, r.text
    ev = only_event(herald, "raw-bin")
    assert base64.b64decode(ev["data_base64"]) == payload and ev["datacontenttype"] == "image/png"
    # Without any Content-Type the body is bytes and there is no datacontenttype.
    r = herald.session.post(herald.topic_url("raw-bin"), data=b"\x01\x02", timeout=10)
    assert r.status_code == 201, r.text
    ev = herald.read("raw-bin", after=1).json()["events"][0]
    assert base64.b64decode(ev["data_base64"]) == b"\x01\x02" and "datacontenttype" not in ev


def test_raw_idempotency_key_is_the_event_id_and_dedups(herald):
    h = {"Content-Type": "text/plain", "Idempotency-Key": "order-77/charge"}
    r1 = herald.publish("pay", "charge 5", headers=h)
    assert r1.status_code == 201, r1.text
    assert r1.json() == {"topic": "pay", "offset": 1, "id": "order-77/charge"}
    r2 = herald.publish("pay", "charge 5 again", headers=h)
    assert r2.status_code == 200, r2.text
    assert r2.json() == {"topic": "pay", "offset": 1, "id": "order-77/charge", "duplicate": True}
    events = herald.read("pay").json()["events"]
    assert len(events) == 1 and events[0]["data"] == "charge 5" and events[0]["id"] == "order-77/charge"
    # Without the key every raw publish is new.
    assert herald.publish("pay", "x", headers={"Content-Type": "text/plain"}).json()["offset"] == 2
    assert herald.publish("pay", "x", headers={"Content-Type": "text/plain"}).json()["offset"] == 3


def test_raw_empty_idempotency_key_is_400(herald):
    r = herald.publish("pay", "x", headers={"Content-Type": "text/plain", "Idempotency-Key": ""})
    assert_error(r, 400, "invalid_event", "idempotency-key")


# ---- batch mode -----------------------------------------------------------

def test_batch_partial_failure_stores_the_valid_entries_in_request_order(herald):
    batch = [
        structured("ok-1", data={"n": 1}),
        {"specversion": "1.0", "id": "bad-1", "type": "t"},            # no source
        structured("ok-2", data=12345678901234567890),
        "not an object",
        structured("bad-2", time="noon"),
        structured("ok-3"),
    ]
    r = herald.publish("batch", json.dumps(batch), headers=CE_BATCH)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["failed_count"] == 3
    e = body["entries"]
    assert len(e) == 6
    assert e[0] == {"offset": 1, "id": "ok-1"}
    assert e[1] == {"error": {"code": "invalid_event", "message": "missing required attribute 'source'"}}
    assert e[2] == {"offset": 2, "id": "ok-2"}
    assert e[3] == {"error": {"code": "invalid_event", "message": "batch entry must be a JSON object"}}
    assert e[4]["error"]["code"] == "invalid_event" and "'time'" in e[4]["error"]["message"]
    assert e[5] == {"offset": 3, "id": "ok-3"}
    raw = herald.read("batch").text
    assert '"data":12345678901234567890' in raw
    events = json.loads(raw)["events"]
    assert [(ev["id"], ev["offset"]) for ev in events] == [("ok-1", 1), ("ok-2", 2), ("ok-3", 3)]
    # Offsets stay dense across requests.
    r = herald.publish("batch", json.dumps([structured("ok-4")]), headers=CE_BATCH)
    assert r.json() == {"failed_count": 0, "entries": [{"offset": 4, "id": "ok-4"}]}


def test_batch_where_every_entry_fails_stores_nothing(herald):
    r = herald.publish("allbad", json.dumps([{"id": "x"}, 7]), headers=CE_BATCH)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["failed_count"] == 2 and all("error" in e for e in body["entries"])
    assert_topic_absent(herald, "allbad")


def test_empty_batch_is_200_with_no_entries(herald):
    r = herald.publish("empty", "[]", headers=CE_BATCH)
    assert r.status_code == 200, r.text
    assert r.json() == {"failed_count": 0, "entries": []}
    assert_topic_absent(herald, "empty")


@pytest.mark.parametrize("body,message", [
    ('{"specversion":"1.0","id":"a","source":"/s","type":"t"}', "batch must be a JSON array of events"),
    ('"x"', "batch must be a JSON array of events"),
    ("[{", "batch is not valid JSON"),
    ("", "batch is not valid JSON"),
])
def test_batch_that_is_not_an_array_is_400(herald, body, message):
    r = herald.publish("nonarray", body, headers=CE_BATCH)
    assert_error(r, 400, "invalid_event", message)
    assert_topic_absent(herald, "nonarray")


def test_batch_of_10000_events_is_taken_and_10001_is_413(herald_factory):
    h = herald_factory(args=["--body-max", "4m"])
    batch = [{"specversion": "1.0", "id": str(i), "source": "/b", "type": "t"} for i in range(10001)]
    r = h.publish("max", json.dumps(batch), headers=CE_BATCH)
    assert r.status_code == 413, r.text[:200]
    assert r.json()["error"] == {"code": "payload_too_large", "message": "batch has more than 10000 events"}
    assert_topic_absent(h, "max")
    r = h.publish("max", json.dumps(batch[:10000]), headers=CE_BATCH)
    assert r.status_code == 200, r.text[:200]
    body = r.json()
    assert body["failed_count"] == 0
    assert [e["offset"] for e in body["entries"]] == list(range(1, 10001))
    info = h.session.get(h.topic_url("max", ""), timeout=10).json()
    assert (info["first"], info["last"], info["count"]) == (1, 10000, 10000)


def test_batch_keeps_data_byte_exact_and_pretty_entries_compact(herald):
    body = '[\n  {"specversion": "1.0", "id": "p", "source": "/s", "type": "t",\n   "data": {"x": 0.1}}\n]'
    assert herald.publish("bpretty", body, headers=CE_BATCH).status_code == 200
    text = event_text(herald.read("bpretty").text)
    assert text.startswith('{"specversion":"1.0","id":"p","source":"/s","type":"t","data":{"x":0.1},"time":"')


# ---- topic names and routes -----------------------------------------------

@pytest.mark.parametrize("segment,message", [
    ("bad%20topic", "character outside [A-Za-z0-9._~:@-] at byte 3"),
    ("a%2Fb", "character outside"),
    ("%C3%A9t%C3%A9", "character outside"),
    ("x" * 256, "longer than 255 bytes"),
    ("..", "cannot be '.' or '..'"),
    ("%2E%2E", "cannot be '.' or '..'"),
    (".", "cannot be '.' or '..'"),
    ("bad%zz", "not valid percent-encoding"),
    ("nul%00", "not valid percent-encoding"),
    ("", "topic name is empty"),
])
def test_bad_topic_name_is_400_invalid_topic(herald, segment, message):
    body = json.dumps(structured("t-1"))
    with RawConn(herald.port) as c:
        r = c.request(http_request("POST", f"/v1/topics/{segment}/events", body, CE_JSON))
        assert r.status == 400, r
        err = r.json()["error"]
        assert err["code"] == "invalid_topic" and message in err["message"], err
        r = c.request(http_request("GET", f"/v1/topics/{segment}/events"))
        assert r.status == 400 and r.json()["error"]["code"] == "invalid_topic", r
    assert requests.get(herald.url + "/v1/topics", timeout=10).json()["topics"] == []


def test_longest_topic_name_and_every_allowed_character_work(herald):
    name = "Az09._~:@-" + "x" * 245
    assert len(name) == 255
    r = herald.publish(name, json.dumps(structured("long")), headers=CE_JSON)
    assert r.status_code == 201, r.text
    assert r.json()["topic"] == name
    assert only_event(herald, name)["topic"] == name


def test_percent_encoded_topic_is_the_same_topic(herald):
    body = json.dumps(structured("u-1"))
    r = herald.session.post(herald.url + "/v1/topics/user%3A42/events", data=body, headers=CE_JSON, timeout=10)
    assert r.status_code == 201 and r.json()["topic"] == "user:42", r.text
    r = herald.session.post(herald.url + "/v1/topics/user:42/events",
                            data=json.dumps(structured("u-2")), headers=CE_JSON, timeout=10)
    assert r.json() == {"topic": "user:42", "offset": 2, "id": "u-2"}
    for url in ("/v1/topics/user:42/events", "/v1/topics/user%3a42/events", "/v1/topics/%75ser%3A42/events"):
        events = herald.session.get(herald.url + url, timeout=10).json()["events"]
        assert [e["topic"] for e in events] == ["user:42", "user:42"], url
    names = [t["name"] for t in herald.session.get(herald.url + "/v1/topics", timeout=10).json()["topics"]]
    assert names == ["user:42"]


@pytest.mark.parametrize("method,path,allow", [
    ("PUT", "/v1/topics/demo/events", "GET, POST"),
    ("DELETE", "/v1/topics/demo/events", "GET, POST"),
    ("POST", "/v1/topics/demo", "GET, DELETE"),
    ("PATCH", "/v1/topics/demo", "GET, DELETE"),
    ("POST", "/v1/topics", "GET"),
    ("DELETE", "/v1/topics", "GET"),
])
def test_wrong_method_is_405_with_allow(herald, method, path, allow):
    r = herald.session.request(method, herald.url + path, data=b"{}", timeout=10)
    assert_error(r, 405, "method_not_allowed", allow)
    assert r.headers["Allow"] == allow
    assert_topic_absent(herald, "demo")


@pytest.mark.parametrize("path", ["/", "/v2/topics", "/v1/topicsx", "/v1/topics/demo/events/1",
                                  "/v1/topics/demo/other", "/v1/topics/demo/", "/healthz/x"])
def test_unknown_route_is_404(herald, path):
    r = herald.session.get(herald.url + path, timeout=10)
    assert_error(r, 404, "not_found", "no such route")


def test_first_publish_is_201_and_a_repeat_is_200(herald):
    ev = json.dumps(structured("same"))
    statuses = [herald.publish("st", ev, headers=CE_JSON).status_code for _ in range(3)]
    assert statuses == [201, 200, 200]
    r = herald.publish("st", ev, headers=CE_JSON)
    assert r.json() == {"topic": "st", "offset": 1, "id": "same", "duplicate": True}


def test_publishes_from_several_clients_get_dense_unique_offsets(herald):
    import concurrent.futures

    def publish(i):
        with requests.Session() as s:
            return [s.post(herald.topic_url("dense"), data=json.dumps(structured(f"c{i}-{k}")),
                           headers=CE_JSON, timeout=30).json()["offset"] for k in range(25)]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        offsets = sorted(o for part in pool.map(publish, range(8)) for o in part)
    assert offsets == list(range(1, 201))
    assert [e["offset"] for e in herald.read_all("dense")] == list(range(1, 201))
