"""Shared subscriptions `$share/{group}/{filter}` (MQTT 5 s4.8.2; the broker offers them to
MQTT 3.1.1 clients too): each message goes to exactly one online member of each group, round
robin; groups and normal subscriptions each get their own copy; no retained messages on a shared
subscribe."""
import queue
import time

import pytest

from conftest import Client
from paho.mqtt.subscribeoptions import SubscribeOptions
from rawmqtt import RawClient, RC_PROTOCOL_ERROR


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


def drain(c, wait=0.0):
    if wait:
        time.sleep(wait)
    out = []
    while True:
        try:
            out.append(c.messages.get_nowait())
        except queue.Empty:
            return out


def collect(members, total, settle=0.5):
    """Wait until `total` messages arrived across members (bounded), then a little longer to
    catch extra copies. Returns {member index: [payload, ...]}."""
    got = {i: [] for i in range(len(members))}
    deadline = time.time() + 10
    while sum(len(v) for v in got.values()) < total and time.time() < deadline:
        for i, c in enumerate(members):
            got[i] += [m.payload for m in drain(c)]
        time.sleep(0.02)
    time.sleep(settle)
    for i, c in enumerate(members):
        got[i] += [m.payload for m in drain(c)]
    return got


def payloads(n, prefix="m"):
    return [("%s%d" % (prefix, i)).encode() for i in range(n)]


def rc_value(x):
    return x.value if hasattr(x, "value") else x


def test_round_robin_between_two_members(broker, version, clients):
    m = [paho(broker, version, "member%d" % i, clients) for i in range(2)]
    for c in m:
        assert [rc_value(g) for g in c.subscribe("$share/g/sh/t", qos=1)] == [1]
    pub = paho(broker, version, "pub", clients)
    sent = payloads(10)
    for p in sent:
        pub.publish("sh/t", p, qos=1)
    got = collect(m, 10)
    assert sorted(got[0] + got[1]) == sorted(sent), got  # each message exactly once
    assert (len(got[0]), len(got[1])) == (5, 5), got
    # Each member sees its share in publish order.
    for i in (0, 1):
        assert got[i] == [p for p in sent if p in got[i]]


def test_two_groups_and_a_normal_subscriber_each_get_a_copy(broker, version, clients):
    g1 = [paho(broker, version, "g1m%d" % i, clients) for i in range(2)]
    g2 = [paho(broker, version, "g2m0", clients)]
    normal = paho(broker, version, "normal", clients)
    for c in g1:
        c.subscribe("$share/g1/grp/+", qos=1)
    g2[0].subscribe("$share/g2/grp/#", qos=1)
    normal.subscribe("grp/t", qos=1)
    pub = paho(broker, version, "pub", clients)
    sent = payloads(10)
    for p in sent:
        pub.publish("grp/t", p, qos=1)
    got1 = collect(g1, 10)
    assert sorted(got1[0] + got1[1]) == sorted(sent)
    assert (len(got1[0]), len(got1[1])) == (5, 5), got1
    assert collect(g2, 10, settle=0.1)[0] == sent
    assert [m.payload for m in normal.expect_messages(10)] + \
        [m.payload for m in drain(normal, 0.1)] == sent


def test_shared_subscription_qos_is_min(broker, version, clients):
    m0 = paho(broker, version, "m0", clients)
    m0.subscribe("$share/q/sq/t", qos=0)
    pub = paho(broker, version, "pub", clients)
    pub.publish("sq/t", b"x", qos=2)
    m = m0.expect_message()
    assert (m.topic, m.payload, m.qos) == ("sq/t", b"x", 0)


def test_only_online_members_receive(broker, version, clients):
    """A member that left (clean session, disconnected) gets nothing; the others get all."""
    m = [paho(broker, version, "member%d" % i, clients) for i in range(3)]
    for c in m:
        c.subscribe("$share/g/on/t", qos=1)
    m[1].disconnect()
    time.sleep(0.2)
    pub = paho(broker, version, "pub", clients)
    sent = payloads(10)
    for p in sent:
        pub.publish("on/t", p, qos=1)
    got = collect([m[0], m[2]], 10)
    assert sorted(got[0] + got[1]) == sorted(sent), got
    assert (len(got[0]), len(got[1])) == (5, 5), got


def test_unsubscribed_member_gets_nothing(broker, version, clients):
    m = [paho(broker, version, "member%d" % i, clients) for i in range(2)]
    for c in m:
        c.subscribe("$share/g/un/t", qos=1)
    m[1].unsubscribe("$share/g/un/t")
    pub = paho(broker, version, "pub", clients)
    sent = payloads(6)
    for p in sent:
        pub.publish("un/t", p, qos=1)
    got = collect(m, 6)
    assert got == {0: sent, 1: []}


def test_retained_not_sent_on_shared_subscribe(broker, version, clients):
    """s4.8.2: retained messages are not sent when a shared subscription is established; live
    messages flow, and a normal subscription to the same filter still gets the retained one."""
    pub = paho(broker, version, "pub", clients)
    pub.publish("shr/t", b"retained", qos=1, retain=True)
    member = paho(broker, version, "member", clients)
    member.subscribe("$share/g/shr/#", qos=1)
    member.expect_no_message(0.7)
    pub.publish("shr/t", b"live", qos=1)
    assert member.expect_message().payload == b"live"
    normal = paho(broker, version, "normal", clients)
    normal.subscribe("shr/#", qos=1)
    m = normal.expect_message()
    assert (m.payload, m.retain) == (b"retained", 1)


def test_shared_wildcard_filter_spreads_topics(broker, version, clients):
    m = [paho(broker, version, "member%d" % i, clients) for i in range(2)]
    for c in m:
        c.subscribe("$share/w/sw/#", qos=1)
    pub = paho(broker, version, "pub", clients)
    sent = []
    for i in range(12):
        t = "sw/%s/%d" % ("ab"[i % 2], i)
        sent.append(t.encode())
        pub.publish(t, t.encode(), qos=1)
    got = collect(m, 12)
    assert sorted(got[0] + got[1]) == sorted(sent)
    assert (len(got[0]), len(got[1])) == (6, 6), got


@pytest.mark.parametrize("bad", ["$share/g", "$share//sb/t", "$share/g+/sb/t", "$share/g#/sb",
                                 "$share/g/"])
def test_invalid_shared_filters_are_refused(broker, version, clients, bad):
    """s4.8.2: the ShareName is at least one character, without `/`, `+`, `#`, and is followed
    by `/` and a Topic Filter. Invalid ones: v5 SUBACK 0x8F, 3.1.1 0x80."""
    c = RawClient(broker.port, version)
    clients.append(c)
    assert c.connect("rawsub").rc == 0
    ack = c.subscribe([(bad, 1), ("sb/ok", 1)])
    assert ack.rcs == [0x8F if version == "5" else 0x80, 1]


def test_no_local_on_shared_subscription_is_protocol_error(broker, clients):
    """v5 s3.8.3.1: No Local 1 on a Shared Subscription is a Protocol Error."""
    c = RawClient(broker.port, 5)
    clients.append(c)
    assert c.connect("rawsub").rc == 0
    c.subscribe([("$share/g/nl/t", 0x04 | 1)], wait=False)
    d = c.expect_disconnect()
    assert d.rc == RC_PROTOCOL_ERROR, d
    assert c.wait_closed(2.0)


def test_shared_with_v5_options_member(broker, clients):
    """A v5 member subscribing with ordinary options receives its share."""
    m = paho(broker, "5", "m", clients)
    m.subscribe("$share/o/opt/t", options=SubscribeOptions(qos=2))
    pub = paho(broker, "5", "pub", clients)
    pub.publish("opt/t", b"x", qos=2)
    msg = m.expect_message()
    assert (msg.topic, msg.qos) == ("opt/t", 2)
