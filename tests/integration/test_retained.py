"""Retained messages: set, replace, clear with an empty payload, delivered on subscribe with
RETAIN 1 (live messages with RETAIN 0), wildcard subscriptions, QoS min(retained, subscription),
Message Expiry of retained messages (MQTT 3.1.1 s3.3.1.3; MQTT 5 s3.3.1.3, 3.3.2.3.3)."""
import queue
import time

import pytest

from conftest import Client, props
from paho.mqtt.packettypes import PacketTypes


@pytest.fixture
def clients():
    made = []
    yield made
    for c in reversed(made):
        try:
            c.c.disconnect()  # first, so the loop thread ends at once
        except Exception:
            pass
        c.c.loop_stop()


def paho(broker, version, cid, clients, **connect_kw):
    c = Client(broker, version, cid)
    clients.append(c)
    c.connect(**connect_kw)
    return c


def drain(c, wait=0.0):
    if wait:
        time.sleep(wait)
    out = []
    while True:
        try:
            out.append(c.messages.get_nowait())
        except queue.Empty:
            return out


def test_retained_delivered_on_subscribe(broker, version, clients):
    """A retained message reaches later subscribers with RETAIN 1, also after its publisher has
    gone, and every new subscriber gets it."""
    pub = paho(broker, version, "pub", clients)
    pub.publish("ret/t", b"kept", qos=1, retain=True)
    pub.disconnect()
    for i in range(2):
        sub = paho(broker, version, "sub%d" % i, clients)
        sub.subscribe("ret/t", qos=1)
        m = sub.expect_message()
        assert (m.topic, m.payload, m.retain) == ("ret/t", b"kept", 1)
        sub.expect_no_message(0.3)


def test_retained_qos_is_min_of_retained_and_subscription(broker, version, clients):
    pub = paho(broker, version, "pub", clients)
    for rq in (0, 1, 2):
        pub.publish("rq/%d" % rq, b"r%d" % rq, qos=rq, retain=True)
    time.sleep(0.2)  # the QoS 0 one has no acknowledgement to wait for
    for sq in (0, 1, 2):
        sub = paho(broker, version, "sub%d" % sq, clients)
        sub.subscribe("rq/+", qos=sq)
        got = sorted((m.topic, m.qos, m.retain) for m in sub.expect_messages(3))
        assert got == [("rq/%d" % rq, min(rq, sq), 1) for rq in (0, 1, 2)], "sub qos %d" % sq
        sub.expect_no_message(0.2)


def test_retained_replaced_by_newer(broker, version, clients):
    pub = paho(broker, version, "pub", clients)
    for payload in (b"v1", b"v2", b"v3"):
        pub.publish("rep/t", payload, qos=1, retain=True)
    sub = paho(broker, version, "sub", clients)
    sub.subscribe("rep/t", qos=1)
    assert sub.expect_message().payload == b"v3"
    sub.expect_no_message(0.4)


def test_non_retained_publish_keeps_retained_message(broker, version, clients):
    pub = paho(broker, version, "pub", clients)
    pub.publish("keep/t", b"retained", qos=1, retain=True)
    pub.publish("keep/t", b"transient", qos=1, retain=False)
    sub = paho(broker, version, "sub", clients)
    sub.subscribe("keep/t", qos=1)
    m = sub.expect_message()
    assert (m.payload, m.retain) == (b"retained", 1)
    sub.expect_no_message(0.4)


def test_live_messages_have_retain_0_and_empty_payload_clears(broker, version, clients):
    """To an established subscription a retained publish is sent with RETAIN 0 (3.1.1
    [MQTT-3.3.1-9]; v5 without Retain As Published). A retained publish with an empty payload
    is delivered like any message and removes the retained message."""
    sub = paho(broker, version, "sub", clients)
    sub.subscribe("clr/t", qos=1)
    pub = paho(broker, version, "pub", clients)
    pub.publish("clr/t", b"kept", qos=1, retain=True)
    m = sub.expect_message()
    assert (m.payload, m.retain) == (b"kept", 0)
    pub.publish("clr/t", b"", qos=1, retain=True)
    m = sub.expect_message()
    assert (m.topic, m.payload, m.retain) == ("clr/t", b"", 0)
    late = paho(broker, version, "late", clients)
    late.subscribe("clr/#", qos=1)
    late.expect_no_message(0.7)
    # Clearing a topic that has nothing retained is harmless.
    pub.publish("clr/none", b"", qos=1, retain=True)
    pub.publish("clr/t", b"again", qos=1, retain=True)
    late2 = paho(broker, version, "late2", clients)
    late2.subscribe("clr/#", qos=1)
    m = late2.expect_message()
    assert (m.topic, m.payload, m.retain) == ("clr/t", b"again", 1)
    late2.expect_no_message(0.3)


def test_retained_with_wildcard_subscriptions(broker, version, clients):
    pub = paho(broker, version, "pub", clients)
    topics = ["rw/a", "rw/b", "rw/b/c", "rw/b/c/d", "rw2/a", "other/a"]
    for t in topics:
        pub.publish(t, t.encode(), qos=1, retain=True)
    pub.publish("rw/b", b"", qos=1, retain=True)  # cleared again
    cases = {
        "rw/#": ["rw/a", "rw/b/c", "rw/b/c/d"],
        "rw/+": ["rw/a"],
        "+/a": ["rw/a", "rw2/a", "other/a"],
        "rw/+/c": ["rw/b/c"],
        "#": ["rw/a", "rw/b/c", "rw/b/c/d", "rw2/a", "other/a"],
        "nothing/#": [],
    }
    for i, (f, want) in enumerate(cases.items()):
        sub = paho(broker, version, "sub%d" % i, clients)
        sub.subscribe(f, qos=1)
        got = sub.expect_messages(len(want)) if want else []
        got += drain(sub, 0.3)
        assert sorted(m.topic for m in got) == sorted(want), f
        assert all(m.retain == 1 and m.payload == m.topic.encode() for m in got)


def test_retained_across_protocol_versions(broker, clients):
    p3 = paho(broker, "3.1.1", "p3", clients)
    p5 = paho(broker, "5", "p5", clients)
    p3.publish("xv/from3", b"three", qos=1, retain=True)
    p5.publish("xv/from5", b"five", qos=1, retain=True)
    for v in ("3.1.1", "5"):
        sub = paho(broker, v, "sub" + v, clients)
        sub.subscribe("xv/#", qos=1)
        got = sorted((m.topic, m.payload, m.retain) for m in sub.expect_messages(2))
        assert got == [("xv/from3", b"three", 1), ("xv/from5", b"five", 1)]


def test_retained_message_expiry(broker, clients):
    """v5 s3.3.2.3.3: a retained message is not delivered once its Message Expiry Interval has
    passed; a retained message still alive is delivered with the remaining interval."""
    pub = paho(broker, "5", "pub", clients)
    pub.publish("exp/short", b"short", qos=1, retain=True,
                properties=props(PacketTypes.PUBLISH, MessageExpiryInterval=1))
    pub.publish("exp/long", b"long", qos=1, retain=True,
                properties=props(PacketTypes.PUBLISH, MessageExpiryInterval=60))
    early = paho(broker, "5", "early", clients)
    early.subscribe("exp/#", qos=1)
    got = {m.topic: m for m in early.expect_messages(2)}
    assert got["exp/short"].properties.MessageExpiryInterval <= 1
    assert got["exp/long"].properties.MessageExpiryInterval <= 60
    time.sleep(2.5)
    late = paho(broker, "5", "late", clients)
    late.subscribe("exp/#", qos=1)
    m = late.expect_message()
    assert (m.topic, m.retain) == ("exp/long", 1)
    remaining = m.properties.MessageExpiryInterval
    assert 50 <= remaining <= 58, "expiry not decremented: %d" % remaining
    late.expect_no_message(0.5)


def test_retained_without_expiry_has_no_expiry_property(broker, clients):
    pub = paho(broker, "5", "pub", clients)
    pub.publish("noexp/t", b"x", qos=1, retain=True)
    sub = paho(broker, "5", "sub", clients)
    sub.subscribe("noexp/t", qos=1)
    m = sub.expect_message()
    assert m.retain == 1
    assert not hasattr(m.properties, "MessageExpiryInterval")
