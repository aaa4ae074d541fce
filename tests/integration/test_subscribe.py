"""SUBSCRIBE / UNSUBSCRIBE: per-filter reason codes, granted QoS, replacing subscriptions, topic
filter matching, `$` topics, and the MQTT 5 subscription options (No Local, Retain As Published,
Retain Handling) and Subscription Identifiers (MQTT 3.1.1 s3.8-3.11, 4.7; MQTT 5 s3.8-3.11,
3.3.4, 4.7, 4.8.1)."""
import queue
import time

import pytest

from conftest import Client, props, TIMEOUT
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.subscribeoptions import SubscribeOptions
from rawmqtt import RawClient, PUBLISH, RC_NO_SUBSCRIPTION_EXISTED, topic_matches


# ------------------------------------------------------------------ helpers
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


def raw(broker, version, cid, clients, **connect_kw):
    r = RawClient(broker.port, version)
    clients.append(r)
    ack = r.connect(cid, **connect_kw)
    assert ack.rc == 0, ack
    return r


def drain(c):
    """Messages already queued on a paho Client, without waiting."""
    out = []
    while True:
        try:
            out.append(c.messages.get_nowait())
        except queue.Empty:
            return out


def rc_value(x):
    return x.value if hasattr(x, "value") else x


def invalid_filter_rc(version):
    """SUBACK code for a filter that is not valid: v5 0x8F Topic Filter invalid, 3.1.1 0x80."""
    return 0x8F if version == "5" else 0x80


def sub_ids(m):
    return list(getattr(m.properties, "SubscriptionIdentifier", []) or [])


# ------------------------------------------------------------------ SUBACK
def test_multiple_filters_get_per_filter_reason_codes(broker, version, clients):
    """One SUBSCRIBE with several filters: one SUBACK code per filter in order: the granted QoS
    for valid filters, a failure code for invalid ones; the valid ones work."""
    sub = raw(broker, version, "rawsub", clients)
    bad = invalid_filter_rc(version)
    filters = [("ms/a", 0), ("ms/#/x", 1), ("ms/b", 1), ("ms/c+", 2), ("ms/c", 2),
               ("#ms", 0), ("ms/d#", 1), ("+ms/e", 1)]
    ack = sub.subscribe(filters)
    assert ack.rcs == [0, bad, 1, bad, 2, bad, bad, bad]
    pub = paho(broker, version, "pub", clients)
    for t in ("ms/a", "ms/b", "ms/c"):
        pub.publish(t, t.encode(), qos=2)
    got = []
    deadline = time.time() + TIMEOUT
    while len(got) < 3 and time.time() < deadline:
        p = sub.recv(max(0.1, deadline - time.time()))
        if p.type == PUBLISH:
            got.append(p)
            if p.qos == 1:
                sub.puback(p.packet_id)
            elif p.qos == 2:
                sub.pubrec(p.packet_id)
    assert sorted((p.topic, p.qos) for p in got) == [("ms/a", 0), ("ms/b", 1), ("ms/c", 2)]


def test_resubscribe_replaces_the_subscription(broker, version, clients):
    """s3.8.4: a SUBSCRIBE with a filter identical to an existing one replaces it (new maximum
    QoS); the client still gets exactly one copy of each message."""
    sub = paho(broker, version, "sub", clients)
    pub = paho(broker, version, "pub", clients)
    for sq in (0, 2, 1, 0):
        assert [rc_value(g) for g in sub.subscribe("rs/t", qos=sq)] == [sq]
        pub.publish("rs/t", b"q%d" % sq, qos=2)
        m = sub.expect_message()
        assert (m.payload, m.qos) == (b"q%d" % sq, sq)
        sub.expect_no_message(0.3)


# ------------------------------------------------------------------ UNSUBSCRIBE
def test_unsubscribe_reason_codes_and_effect(broker, version, clients):
    """UNSUBACK: v5 one code per filter, 0x00 Success or 0x11 No subscription existed; 3.1.1 no
    payload. Filters compare character by character: unsubscribing "us/a" leaves "us/#" alone."""
    sub = raw(broker, version, "rawsub", clients)
    assert sub.subscribe([("us/a", 0), ("us/b", 0), ("us/#", 0)]).rcs == [0, 0, 0]
    pid = sub.next_packet_id()
    ack = sub.unsubscribe(["us/a", "us/none", "us/b"], packet_id=pid)
    assert ack.packet_id == pid
    if version == "5":
        assert ack.rcs == [0x00, RC_NO_SUBSCRIPTION_EXISTED, 0x00]
    else:
        assert ack.rcs == []
    pub = paho(broker, version, "pub", clients)
    pub.publish("us/a", b"1", qos=1)
    got = [p for p in sub.recv_all(0.7) if p.type == PUBLISH]
    # Only the remaining "us/#" subscription delivers: exactly one copy.
    assert [(p.topic, p.payload) for p in got] == [("us/a", b"1")]
    ack = sub.unsubscribe(["us/#"])
    if version == "5":
        assert ack.rcs == [0x00]
    pub.publish("us/b", b"2", qos=1)
    assert [p for p in sub.recv_all(0.7) if p.type == PUBLISH] == []
    if version == "5":
        assert sub.unsubscribe(["us/#"]).rcs == [RC_NO_SUBSCRIPTION_EXISTED]


# ------------------------------------------------------------------ matching
FILTERS = ["sport/tennis/player1/#", "sport/#", "#", "+", "+/+", "/+", "sport/+",
           "sport/tennis/+", "+/tennis/#", "sport/+/player1", "finance", "finance/+/#"]
TOPICS = ["sport", "sport/", "sport/tennis", "sport/tennis/player1",
          "sport/tennis/player1/ranking", "sport/chess/player1", "/finance", "finance",
          "finance/stock", "finance/stock/ibm", "Sport/tennis"]


def test_wildcard_matching(broker, version, clients):
    subs = {}
    for i, f in enumerate(FILTERS):
        subs[f] = paho(broker, version, "sub%d" % i, clients)
        subs[f].subscribe(f, qos=1)
    pub = paho(broker, version, "pub", clients)
    for t in TOPICS:
        pub.publish(t, t.encode(), qos=1)
    for f, c in subs.items():
        want = [t for t in TOPICS if topic_matches(f, t)]
        got = c.expect_messages(len(want)) if want else []
        assert [m.topic for m in got] == want, f
    time.sleep(0.3)
    for f, c in subs.items():
        extra = drain(c)
        assert extra == [], "%s also got %s" % (f, [m.topic for m in extra])


def test_dollar_topics_not_matched_by_leading_wildcards(broker_factory, version, clients):
    """s4.7.2: `#` and `+/...` do not match topics starting with `$`; `$SYS/#` does."""
    b = broker_factory({"mqtt": {"sys_interval": 1}})
    wild = {}
    for i, f in enumerate(["#", "+/broker/#", "+/+/+", "+/broker/version"]):
        wild[f] = paho(b, version, "wild%d" % i, clients)
        wild[f].subscribe(f, qos=0)
    sys_sub = paho(b, version, "syssub", clients)
    sys_sub.subscribe("$SYS/#", qos=0)
    m = sys_sub.expect_message(timeout=5)
    assert m.topic.startswith("$SYS/")
    time.sleep(1.3)  # at least one more $SYS round
    for f, c in wild.items():
        got = [m.topic for m in drain(c)]
        assert not [t for t in got if t.startswith("$")], "%s matched %s" % (f, got)


# ------------------------------------------------------------------ v5 subscription options
def test_no_local(broker, version, clients):
    """v5 No Local: the subscriber's own messages are not sent back; others' still are. Without
    the option (and always for 3.1.1) a client receives its own publications."""
    a = paho(broker, version, "a", clients)
    other = paho(broker, version, "other", clients)
    if version == "5":
        a.subscribe("nl/t", options=SubscribeOptions(qos=1, noLocal=True))
    else:
        a.subscribe("nl/t", qos=1)
    a.publish("nl/t", b"own", qos=1)
    if version == "5":
        a.expect_no_message(0.7)
    else:
        assert a.expect_message().payload == b"own"
    other.publish("nl/t", b"theirs", qos=1)
    assert a.expect_message().payload == b"theirs"
    if version == "5":
        # Replacing the subscription without No Local brings own messages back.
        a.subscribe("nl/t", options=SubscribeOptions(qos=1, noLocal=False))
        a.publish("nl/t", b"own2", qos=1)
        assert a.expect_message().payload == b"own2"


def test_retain_as_published(broker, clients):
    """v5 Retain As Published: live messages keep the publisher's RETAIN flag for a subscription
    with the option, and have RETAIN 0 without it. Messages sent because of a new subscription
    always have RETAIN 1."""
    pub = paho(broker, "5", "pub", clients)
    rap = paho(broker, "5", "rap", clients)
    plain = paho(broker, "5", "plain", clients)
    rap.subscribe("rap/#", options=SubscribeOptions(qos=1, retainAsPublished=True))
    plain.subscribe("rap/#", options=SubscribeOptions(qos=1, retainAsPublished=False))
    pub.publish("rap/r", b"retained", qos=1, retain=True)
    pub.publish("rap/n", b"normal", qos=1, retain=False)
    r1, r2 = rap.expect_messages(2)
    p1, p2 = plain.expect_messages(2)
    assert [(m.payload, m.retain) for m in (r1, r2)] == [(b"retained", 1), (b"normal", 0)]
    assert [(m.payload, m.retain) for m in (p1, p2)] == [(b"retained", 0), (b"normal", 0)]
    late = paho(broker, "5", "late", clients)
    late.subscribe("rap/#", options=SubscribeOptions(qos=1, retainAsPublished=False))
    m = late.expect_message()
    assert (m.topic, m.payload, m.retain) == ("rap/r", b"retained", 1)
    pub.publish("rap/r", b"", qos=1, retain=True)  # clean up the retained message


def test_retain_handling(broker, clients):
    """v5 Retain Handling: 0 sends retained messages on every SUBSCRIBE, 1 only when the
    subscription did not exist yet, 2 never. Live messages flow in all three cases."""
    pub = paho(broker, "5", "pub", clients)
    pub.publish("rh/t", b"kept", qos=1, retain=True)
    c = {}
    for rh in (0, 1, 2):
        c[rh] = paho(broker, "5", "rh%d" % rh, clients)
    opts = lambda rh: SubscribeOptions(qos=1, retainHandling=rh)  # noqa: E731
    for rh in (0, 1, 2):
        c[rh].subscribe("rh/#", options=opts(rh))
    for rh in (0, 1):
        m = c[rh].expect_message()
        assert (m.topic, m.payload, m.retain) == ("rh/t", b"kept", 1)
    c[2].expect_no_message(0.5)
    # Subscribe again to the same filter: only Retain Handling 0 resends.
    for rh in (0, 1, 2):
        c[rh].subscribe("rh/#", options=opts(rh))
    m = c[0].expect_message()
    assert (m.payload, m.retain) == (b"kept", 1)
    c[1].expect_no_message(0.5)
    c[2].expect_no_message(0.1)
    # A different filter is a new subscription: Retain Handling 1 sends again.
    c[1].subscribe("rh/+", options=opts(1))
    m = c[1].expect_message()
    assert (m.payload, m.retain) == (b"kept", 1)
    pub.publish("rh/t", b"live", qos=1)
    for rh in (0, 2):
        m = c[rh].expect_message()
        assert (m.payload, m.retain) == (b"live", 0)
    # rh1 has two matching subscriptions now: at least one copy, all of them live.
    got = c[1].expect_messages(1) + drain_after(c[1], 0.3)
    assert got and all((m.payload, m.retain) == (b"live", 0) for m in got)


def drain_after(c, wait):
    time.sleep(wait)
    return drain(c)


# ------------------------------------------------------------------ subscription identifiers
def sid(n):
    return props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=n)


def test_subscription_identifier_delivered(broker, clients):
    sub = paho(broker, "5", "sub", clients)
    other = paho(broker, "5", "other", clients)
    pub = paho(broker, "5", "pub", clients)
    sub.subscribe("si/#", qos=1, properties=sid(7))
    other.subscribe("si/#", qos=1, properties=sid(268435455))  # the maximum value
    sub.subscribe("plain/t", qos=1)
    pub.publish("si/a", b"1", qos=1)
    pub.publish("plain/t", b"2", qos=1)
    m1, m2 = sub.expect_messages(2)
    assert (m1.topic, sub_ids(m1)) == ("si/a", [7])
    assert (m2.topic, sub_ids(m2)) == ("plain/t", [])
    assert sub_ids(other.expect_message()) == [268435455]


def test_subscription_identifier_replaced_on_resubscribe(broker, clients):
    """Replacing a subscription replaces its identifier; without one, none is sent."""
    sub = paho(broker, "5", "sub", clients)
    pub = paho(broker, "5", "pub", clients)
    for ident in (3, 4, None):
        sub.subscribe("sr/t", qos=1, properties=sid(ident) if ident else None)
        pub.publish("sr/t", b"x", qos=1)
        m = sub.expect_message()
        assert sub_ids(m) == ([ident] if ident else [])
        sub.expect_no_message(0.2)


def test_subscription_identifier_on_retained_delivery(broker, clients):
    pub = paho(broker, "5", "pub", clients)
    pub.publish("sir/t", b"r", qos=1, retain=True)
    sub = paho(broker, "5", "sub", clients)
    sub.subscribe("sir/+", qos=1, properties=sid(42))
    m = sub.expect_message()
    assert (m.payload, m.retain, sub_ids(m)) == (b"r", 1, [42])
    pub.publish("sir/t", b"", qos=1, retain=True)


def test_overlapping_subscriptions_with_identifiers(broker, clients):
    """s3.3.4: a message matching several subscriptions of one client is delivered either once,
    carrying all their Subscription Identifiers and the maximum QoS, or once per subscription,
    each copy with that subscription's identifier and QoS."""
    sub = paho(broker, "5", "sub", clients)
    pub = paho(broker, "5", "pub", clients)
    sub.subscribe("ov/#", qos=0, properties=sid(1))
    sub.subscribe("ov/+", qos=2, properties=sid(2))
    sub.subscribe("ov/a", qos=1)  # no identifier
    pub.publish("ov/a", b"x", qos=2)
    got = sub.expect_messages(1) + drain_after(sub, 0.7)
    assert 1 <= len(got) <= 3, got
    assert all(m.payload == b"x" for m in got)
    assert max(m.qos for m in got) == 2
    if len(got) == 1:
        assert sorted(sub_ids(got[0])) == [1, 2]
    else:
        by_ids = sorted((tuple(sub_ids(m)), m.qos) for m in got)
        if len(got) == 3:
            assert by_ids == [((), 1), ((1,), 0), ((2,), 2)]
        else:
            # Two copies: each identifier appears once overall.
            assert sorted(i for m in got for i in sub_ids(m)) == [1, 2]
    # Only "ov/#" matches a deeper topic.
    pub.publish("ov/a/b", b"y", qos=2)
    m = sub.expect_message()
    assert (m.payload, m.qos, sub_ids(m)) == (b"y", 0, [1])
    sub.expect_no_message(0.3)


def test_overlapping_subscriptions_qos(broker, version, clients):
    """s3.3.4: overlapping subscriptions -> at least one copy with the maximum of their QoS."""
    sub = paho(broker, version, "sub", clients)
    pub = paho(broker, version, "pub", clients)
    sub.subscribe("oq/#", qos=0)
    sub.subscribe("oq/+", qos=2)
    pub.publish("oq/a", b"x", qos=2)
    got = sub.expect_messages(1) + drain_after(sub, 0.7)
    assert len(got) in (1, 2)
    assert max(m.qos for m in got) == 2
    if len(got) == 2:
        assert sorted(m.qos for m in got) == [0, 2]
