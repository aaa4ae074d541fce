"""MQTT 5 PUBLISH properties pass through the broker unchanged publisher -> subscriber: Response
Topic, Correlation Data, User Properties (order and duplicate keys kept), Payload Format
Indicator, Content Type; Message Expiry Interval is forwarded decremented by the time the message
waited in the broker, and an expired message is not delivered (MQTT 5 s3.3.2.3)."""
import time

import pytest

from conftest import Client, props
from paho.mqtt.packettypes import PacketTypes
from rawmqtt import RawClient, PUBLISH

USER_PROPS = [("a", "1"), ("b", "2"), ("a", "3"), ("ключ", "значение ✓"), ("empty", ""),
              ("a", "1")]
CORRELATION = b"\x00\xff\x10corr\x80"  # binary, not valid UTF-8


@pytest.fixture
def clients():
    made = []
    yield made
    for c in reversed(made):
        if isinstance(c, Client):
            try:
                c.c.disconnect()  # first, so the loop thread ends at once
            except Exception:
                pass
            c.c.loop_stop()
        else:
            c.close()


def paho(broker, version, cid, clients, **connect_kw):
    c = Client(broker, version, cid)
    clients.append(c)
    c.connect(**connect_kw)
    return c


def full_props(**extra):
    kw = dict(ResponseTopic="reply/to/me", CorrelationData=CORRELATION, UserProperty=USER_PROPS,
              PayloadFormatIndicator=1, ContentType="application/json; charset=utf-8")
    kw.update(extra)
    return props(PacketTypes.PUBLISH, **kw)


def assert_full_props(p):
    assert p.ResponseTopic == "reply/to/me"
    assert p.CorrelationData == CORRELATION
    assert p.UserProperty == USER_PROPS
    assert p.PayloadFormatIndicator == 1
    assert p.ContentType == "application/json; charset=utf-8"


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_properties_pass_through(broker, clients, qos):
    sub = paho(broker, "5", "sub", clients)
    sub.subscribe("props/t", qos=2)
    pub = paho(broker, "5", "pub", clients)
    pub.publish("props/t", b'{"k": 1}', qos=qos, properties=full_props())
    m = sub.expect_message()
    assert (m.topic, m.payload, m.qos) == ("props/t", b'{"k": 1}', qos)
    assert_full_props(m.properties)
    assert not hasattr(m.properties, "MessageExpiryInterval")


def test_request_response_round_trip(broker, clients):
    """A responder uses the request's Response Topic and echoes its Correlation Data."""
    requester = paho(broker, "5", "requester", clients)
    responder = paho(broker, "5", "responder", clients)
    requester.subscribe("rr/reply/requester", qos=1)
    responder.subscribe("rr/service", qos=1)
    requester.publish("rr/service", b"ping", qos=1, properties=props(
        PacketTypes.PUBLISH, ResponseTopic="rr/reply/requester", CorrelationData=b"id-17"))
    req = responder.expect_message()
    responder.publish(req.properties.ResponseTopic, b"pong", qos=1, properties=props(
        PacketTypes.PUBLISH, CorrelationData=req.properties.CorrelationData))
    resp = requester.expect_message()
    assert (resp.topic, resp.payload, resp.properties.CorrelationData) == (
        "rr/reply/requester", b"pong", b"id-17")


def test_no_properties_stay_no_properties(broker, clients):
    """A message published without properties arrives without any (nothing left over from an
    earlier message on the same topic)."""
    sub = paho(broker, "5", "sub", clients)
    sub.subscribe("bare/t", qos=1)
    pub = paho(broker, "5", "pub", clients)
    pub.publish("bare/t", b"with", qos=1, properties=full_props(MessageExpiryInterval=100))
    pub.publish("bare/t", b"without", qos=1)
    m1, m2 = sub.expect_messages(2)
    assert_full_props(m1.properties)
    for name in ("ResponseTopic", "CorrelationData", "UserProperty", "PayloadFormatIndicator",
                 "ContentType", "MessageExpiryInterval", "SubscriptionIdentifier"):
        assert not hasattr(m2.properties, name), name


def test_payload_format_indicator_zero_and_content_type_alone(broker, clients):
    sub = paho(broker, "5", "sub", clients)
    sub.subscribe("pfi/t", qos=1)
    pub = paho(broker, "5", "pub", clients)
    pub.publish("pfi/t", b"\xff\xfe binary", qos=1, properties=props(
        PacketTypes.PUBLISH, PayloadFormatIndicator=0, ContentType="application/octet-stream"))
    m = sub.expect_message()
    assert m.payload == b"\xff\xfe binary"
    assert getattr(m.properties, "PayloadFormatIndicator", 0) == 0
    assert m.properties.ContentType == "application/octet-stream"


def test_properties_to_several_subscribers_and_v311(broker, clients):
    """Every v5 subscriber gets the same properties, whatever its QoS; a 3.1.1 subscriber gets
    the message (without properties, which 3.1.1 cannot carry)."""
    subs = []
    for i, q in enumerate((0, 1, 2)):
        s = paho(broker, "5", "sub%d" % i, clients)
        s.subscribe("multi/#", qos=q)
        subs.append(s)
    old = paho(broker, "3.1.1", "old", clients)
    old.subscribe("multi/#", qos=1)
    pub = paho(broker, "5", "pub", clients)
    pub.publish("multi/t", b"x", qos=2, properties=full_props())
    for q, s in enumerate(subs):
        m = s.expect_message()
        assert m.qos == q
        assert_full_props(m.properties)
    m = old.expect_message()
    assert (m.topic, m.payload, m.qos) == ("multi/t", b"x", 1)


def test_properties_kept_on_retained_message(broker, clients):
    pub = paho(broker, "5", "pub", clients)
    pub.publish("pret/t", b"r", qos=1, retain=True, properties=full_props())
    sub = paho(broker, "5", "sub", clients)
    sub.subscribe("pret/t", qos=1)
    m = sub.expect_message()
    assert (m.payload, m.retain) == (b"r", 1)
    assert_full_props(m.properties)


def test_message_expiry_forwarded_on_live_delivery(broker, clients):
    sub = paho(broker, "5", "sub", clients)
    sub.subscribe("mexp/t", qos=1)
    pub = paho(broker, "5", "pub", clients)
    pub.publish("mexp/t", b"x", qos=1, properties=props(PacketTypes.PUBLISH,
                                                         MessageExpiryInterval=30))
    m = sub.expect_message()
    assert 28 <= m.properties.MessageExpiryInterval <= 30


def _blocked_subscriber(broker, clients):
    """A raw v5 subscriber with Receive Maximum 1 holding one unacknowledged message: further
    QoS 1 messages wait in the broker until it sends the PUBACK. Returns (sub, pub, blocker)."""
    sub = RawClient(broker.port, 5)
    clients.append(sub)
    assert sub.connect("rawsub", props={"ReceiveMaximum": 1}).rc == 0
    sub.subscribe([("wait/t", 1)])
    pub = paho(broker, "5", "pub", clients)
    pub.publish("wait/t", b"blocker", qos=1)
    blocker = sub.expect(PUBLISH)
    assert blocker.payload == b"blocker"
    return sub, pub, blocker


def _release_and_collect(sub, blocker):
    sub.puback(blocker.packet_id)
    got = []
    deadline = time.time() + 5
    while time.time() < deadline:
        p = sub.try_recv(0.7)
        if p is None:
            break
        if p.type == PUBLISH:
            got.append(p)
            sub.puback(p.packet_id)
    return got


def test_message_expiry_decremented_while_waiting(broker, clients):
    """A message that waits in the broker (behind a full Receive Maximum window) is sent with
    its Message Expiry Interval minus the time waited (s3.3.2.3.3); other properties intact."""
    sub, pub, blocker = _blocked_subscriber(broker, clients)
    pub.publish("wait/t", b"long", qos=1, properties=full_props(MessageExpiryInterval=20))
    assert [p for p in sub.recv_all(0.5) if p.type == PUBLISH] == []  # really waiting
    time.sleep(2.5)
    got = _release_and_collect(sub, blocker)
    assert [p.payload for p in got] == [b"long"], got
    pr = got[0].props
    left = pr.get("MessageExpiryInterval")
    assert left is not None and 14 <= left <= 17, "remaining expiry %r after ~3s of 20" % left
    assert pr.get("ResponseTopic") == "reply/to/me"
    assert pr.get("CorrelationData") == CORRELATION
    assert pr.all("UserProperty") == USER_PROPS
    assert pr.get("PayloadFormatIndicator") == 1
    assert pr.get("ContentType") == "application/json; charset=utf-8"


def test_expired_message_is_not_delivered(broker, clients):
    """s3.3.2.3.3: once the interval has passed and onward delivery has not started, the broker
    deletes its copy; the messages queued behind it still flow, in order."""
    sub, pub, blocker = _blocked_subscriber(broker, clients)
    pub.publish("wait/t", b"short", qos=1, properties=props(
        PacketTypes.PUBLISH, MessageExpiryInterval=1))
    pub.publish("wait/t", b"after1", qos=1)
    pub.publish("wait/t", b"after2", qos=1, properties=props(
        PacketTypes.PUBLISH, MessageExpiryInterval=60))
    time.sleep(2.5)
    got = _release_and_collect(sub, blocker)
    assert [p.payload for p in got] == [b"after1", b"after2"], got
    assert "MessageExpiryInterval" not in got[0].props
    assert got[1].props.get("MessageExpiryInterval") <= 58
