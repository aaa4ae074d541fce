"""PUBLISH end to end: QoS 0/1/2 flows in both directions, QoS downgrade, ordering, the outgoing
in-flight window and topic aliases in both directions (MQTT 3.1.1 s4.3, 4.6; MQTT 5 s3.3, 4.3,
4.6, 4.9, 3.3.2.3.4)."""
import time

import pytest

from conftest import Client, TIMEOUT
from rawmqtt import (RawClient, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP, publish_packet,
                     RC_SUCCESS, RC_NO_MATCHING_SUBSCRIBERS, RC_PROTOCOL_ERROR,
                     RC_TOPIC_ALIAS_INVALID)


@pytest.fixture
def clients():
    """Everything appended here is closed at teardown (paho Client or RawClient)."""
    made = []
    yield made
    for c in reversed(made):
        close_quietly(c)


def close_quietly(c):
    """Close a paho Client (DISCONNECT first, so the loop thread ends at once) or a RawClient."""
    if isinstance(c, Client):
        try:
            c.c.disconnect()
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
    return r, ack


def publishes(packets):
    return [p for p in packets if p.type == PUBLISH]


# ------------------------------------------------------------------ QoS matrix / downgrade
def test_qos_is_min_of_publish_and_subscription(broker, version, clients):
    """Every (publish QoS, subscription QoS) pair: delivered QoS = min(pub, sub)."""
    pub = paho(broker, version, "pub", clients)
    subs = {}
    for sq in (0, 1, 2):
        subs[sq] = paho(broker, version, "sub%d" % sq, clients)
        granted = subs[sq].subscribe("qm/t", qos=sq)
        g = granted[0]
        assert (g.value if hasattr(g, "value") else g) == sq
    for pq in (0, 1, 2):
        payload = ("qos%d" % pq).encode()
        pub.publish("qm/t", payload, qos=pq)
        for sq, s in subs.items():
            m = s.expect_message()
            assert m.topic == "qm/t" and m.payload == payload
            assert m.qos == min(pq, sq), "pub qos %d sub qos %d -> delivered qos %d" % (
                pq, sq, m.qos)
    for s in subs.values():
        s.expect_no_message(0.3)


# ------------------------------------------------------------------ publisher side flows
@pytest.mark.parametrize("qos", [1, 2])
def test_publisher_ack_flow(broker, version, clients, qos):
    """QoS 1: PUBACK with the same packet id. QoS 2: PUBREC, then PUBREL -> PUBCOMP. The message
    reaches the subscriber exactly once."""
    sub = paho(broker, version, "sub", clients)
    sub.subscribe("flow/t", qos=2)
    pub, _ = raw(broker, version, "rawpub", clients)
    pid = pub.publish("flow/t", b"hello", qos=qos, packet_id=4242)
    if qos == 1:
        ack = pub.expect(PUBACK)
        assert ack.packet_id == 4242
        assert ack.rc == RC_SUCCESS
    else:
        rec = pub.expect(PUBREC)
        assert rec.packet_id == 4242 and rec.rc == RC_SUCCESS
        assert rec.flags == 0
        pub.pubrel(pid)
        comp = pub.expect(PUBCOMP)
        assert comp.packet_id == 4242 and comp.rc == RC_SUCCESS
        assert comp.flags == 0
    m = sub.expect_message()
    assert (m.topic, m.payload, m.qos) == ("flow/t", b"hello", qos)
    sub.expect_no_message(0.5)
    assert pub.try_recv(0.2) is None


@pytest.mark.parametrize("qos", [1, 2])
def test_puback_without_subscribers_v5(broker, clients, qos):
    """v5: a publish nobody subscribed to is still accepted: 0x00 or 0x10 No matching subscribers."""
    pub, _ = raw(broker, "5", "rawpub", clients)
    pid = pub.publish("nobody/listens", b"x", qos=qos)
    ack = pub.expect(PUBACK if qos == 1 else PUBREC)
    assert ack.packet_id == pid
    assert ack.rc in (RC_SUCCESS, RC_NO_MATCHING_SUBSCRIBERS), hex(ack.rc)
    if qos == 2:
        pub.pubrel(pid)
        assert pub.expect(PUBCOMP).packet_id == pid


def test_qos2_duplicate_publish_before_pubrel_delivered_once(broker, version, clients):
    """QoS 2 (s4.3.3): a PUBLISH resent with DUP and the same packet id before PUBREL is answered
    with PUBREC again but not delivered again. After PUBCOMP the id can carry a new message."""
    sub = paho(broker, version, "sub", clients)
    sub.subscribe("once/t", qos=2)
    pub, _ = raw(broker, version, "rawpub", clients)
    pub.publish("once/t", b"first", qos=2, packet_id=10)
    assert pub.expect(PUBREC).packet_id == 10
    pub.publish("once/t", b"first", qos=2, packet_id=10, dup=True)
    assert pub.expect(PUBREC).packet_id == 10
    pub.pubrel(10)
    assert pub.expect(PUBCOMP).packet_id == 10
    m = sub.expect_message()
    assert m.payload == b"first"
    sub.expect_no_message(0.7)
    # Packet id 10 is free again: a new message with it is a new message.
    pub.publish("once/t", b"second", qos=2, packet_id=10)
    assert pub.expect(PUBREC).packet_id == 10
    pub.pubrel(10)
    assert pub.expect(PUBCOMP).packet_id == 10
    assert sub.expect_message().payload == b"second"
    sub.expect_no_message(0.3)


def test_qos1_packet_id_reuse_is_a_new_message(broker, version, clients):
    sub = paho(broker, version, "sub", clients)
    sub.subscribe("reuse/t", qos=1)
    pub, _ = raw(broker, version, "rawpub", clients)
    for payload in (b"a", b"b", b"c"):
        pub.publish("reuse/t", payload, qos=1, packet_id=7)
        assert pub.expect(PUBACK).packet_id == 7
    assert [m.payload for m in sub.expect_messages(3)] == [b"a", b"b", b"c"]


# ------------------------------------------------------------------ subscriber side flows
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_subscriber_receives_flow(broker, version, clients, qos):
    """The broker -> subscriber flow: QoS 0 has no packet id; QoS 1 carries a non-zero id and
    is complete after PUBACK; QoS 2 gets PUBREL (flags 0x2) after PUBREC, complete after PUBCOMP.
    A first delivery never has DUP set; nothing is resent after the flow completes."""
    sub, _ = raw(broker, version, "rawsub", clients)
    ack = sub.subscribe([("rflow/t", qos)])
    assert ack.rcs == [qos]
    pub = paho(broker, version, "pub", clients)
    pub.publish("rflow/t", b"payload", qos=qos)
    p = sub.expect(PUBLISH)
    assert (p.topic, p.payload, p.qos, p.dup, p.retain) == ("rflow/t", b"payload", qos, False,
                                                            False)
    if qos == 0:
        assert p.packet_id is None
    else:
        assert p.packet_id != 0
    if qos == 1:
        sub.puback(p.packet_id)
    elif qos == 2:
        sub.pubrec(p.packet_id)
        rel = sub.expect(PUBREL)
        assert rel.packet_id == p.packet_id
        assert rel.flags == 0x02
        sub.pubcomp(p.packet_id)
    assert sub.recv_all(0.7) == []


# ------------------------------------------------------------------ ordering
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_ordering_from_one_publisher(broker_factory, version, clients, qos):
    """s4.6: messages from one publisher on one topic arrive in order, also when the outgoing
    window (max_inflight_out 2) forces the broker to queue."""
    b = broker_factory({"mqtt": {"max_inflight_out": 2}})
    sub = paho(b, version, "sub", clients)
    sub.subscribe("order/t", qos=qos)
    pub = paho(b, version, "pub", clients)
    n = 60
    infos = [pub.publish("order/t", str(i).encode(), qos=qos, wait=False) for i in range(n)]
    if qos:
        for info in infos:
            pub.wait_acked(info.mid)
    got = [int(m.payload) for m in sub.expect_messages(n, timeout=TIMEOUT * 2)]
    assert got == list(range(n))
    sub.expect_no_message(0.3)


# ------------------------------------------------------------------ in-flight window
def _window_broker(broker_factory, version, window):
    if version == "5":
        # The client's Receive Maximum decides; the broker default for clients without one is
        # deliberately larger so the test shows which one is used.
        b = broker_factory({"mqtt": {"max_inflight_out": 50}})
        connect_props = {"ReceiveMaximum": window}
    else:
        b = broker_factory({"mqtt": {"max_inflight_out": window}})
        connect_props = None
    return b, connect_props


@pytest.mark.parametrize("qos", [1, 2])
def test_inflight_window_holds_unacked_messages(broker_factory, version, clients, qos):
    """At most `window` QoS>0 PUBLISH packets are unacknowledged towards a client (v5 s4.9:
    Receive Maximum; 3.1.1: mqtt.max_inflight_out). The rest wait, in order, until acks free
    the window; a QoS 2 message occupies its slot until PUBCOMP."""
    window, total = 3, 8
    b, cprops = _window_broker(broker_factory, version, window)
    sub, _ = raw(b, version, "rawsub", clients, props=cprops)
    sub.subscribe([("win/t", qos)])
    pub = paho(b, version, "pub", clients)
    for i in range(total):
        pub.publish("win/t", str(i).encode(), qos=qos)

    first = publishes(sub.recv_all(0.8))
    assert [p.payload for p in first] == [b"0", b"1", b"2"], first
    assert len({p.packet_id for p in first}) == window

    stash = []  # PUBLISH packets read while waiting for a PUBREL

    def complete(p, check_pubrec_keeps_slot=False):
        if qos == 1:
            sub.puback(p.packet_id)
            return
        sub.pubrec(p.packet_id)
        while True:
            q = sub.recv()
            if q.type == PUBLISH:
                stash.append(q)
                continue
            assert q.type == PUBREL and q.packet_id == p.packet_id, q
            assert q.flags == 0x02
            break
        if check_pubrec_keeps_slot:
            # v5 s4.9: PUBREC (success) does not free the slot; only PUBCOMP does.
            stash.extend(sub.recv_all(0.5))
            assert publishes(stash) == [], stash
        sub.pubcomp(p.packet_id)

    def collect(wait):
        got = stash[:] + sub.recv_all(wait)
        del stash[:]
        return publishes(got)

    complete(first[0], check_pubrec_keeps_slot=(version == "5"))
    nxt = collect(0.8)
    assert [p.payload for p in nxt] == [b"3"], nxt

    received = first + nxt
    outstanding = first[1:] + nxt
    deadline = time.time() + TIMEOUT
    while len(received) < total:
        assert time.time() < deadline, "only %d of %d delivered" % (len(received), total)
        for p in outstanding:
            complete(p)
        outstanding = collect(0.5)
        assert len(outstanding) <= window, outstanding
        received += outstanding
    for p in outstanding:
        complete(p)
    assert [p.payload for p in received] == [str(i).encode() for i in range(total)]
    assert not any(p.dup for p in received)
    assert collect(0.5) == []


# ------------------------------------------------------------------ topic aliases: client -> broker
def _alias_broker(broker_factory, maximum=5):
    return broker_factory({"mqtt": {"topic_alias_maximum": maximum}})


def test_incoming_topic_alias_set_then_used(broker_factory, clients):
    """v5 s3.3.2.3.4: a PUBLISH with a topic and Topic Alias sets the mapping; a PUBLISH with an
    empty topic and that alias uses it; a later PUBLISH with a topic and the same alias remaps."""
    b = _alias_broker(broker_factory)
    sub = paho(b, "5", "sub", clients)
    sub.subscribe("alias/#", qos=1)
    pub, ack = raw(b, "5", "rawpub", clients)
    assert ack.props.get("TopicAliasMaximum") == 5
    sends = [("alias/one", 1, b"a"), ("", 1, b"b"), ("alias/two", 1, b"c"), ("", 1, b"d"),
             ("alias/three", 5, b"e"), ("", 5, b"f"), ("", 1, b"g")]
    for topic, alias, payload in sends:
        pid = pub.publish(topic, payload, qos=1, props={"TopicAlias": alias})
        assert pub.expect(PUBACK).packet_id == pid
    got = [(m.topic, m.payload) for m in sub.expect_messages(len(sends))]
    assert got == [("alias/one", b"a"), ("alias/one", b"b"), ("alias/two", b"c"),
                   ("alias/two", b"d"), ("alias/three", b"e"), ("alias/three", b"f"),
                   ("alias/two", b"g")]


def _assert_alias_rejected(pub, rcs):
    d = pub.expect_disconnect()
    assert d.rc in rcs, "DISCONNECT 0x%02x, expected one of %s" % (
        d.rc, ["0x%02x" % r for r in rcs])
    assert pub.wait_closed(2.0)


@pytest.mark.parametrize("alias", [0, 6])
def test_incoming_topic_alias_out_of_range_disconnects(broker_factory, clients, alias):
    """Topic Alias 0, or above the Topic Alias Maximum in CONNACK -> DISCONNECT 0x94 Topic Alias
    invalid (s3.3.2.3.4) and the message is not delivered; other clients are unaffected."""
    b = _alias_broker(broker_factory)
    sub = paho(b, "5", "sub", clients)
    sub.subscribe("bad/#", qos=0)
    pub, _ = raw(b, "5", "rawpub", clients)
    pub.publish("bad/alias", b"x", qos=0, props={"TopicAlias": alias})
    _assert_alias_rejected(pub, (RC_TOPIC_ALIAS_INVALID,))
    sub.expect_no_message(0.5)
    other = paho(b, "5", "other", clients)
    other.publish("bad/ok", b"still works", qos=1)
    assert sub.expect_message().payload == b"still works"


def test_incoming_alias_with_maximum_zero_disconnects(broker_factory, clients):
    """With topic_alias_maximum 0 the broker accepts no aliases: CONNACK announces none (absent
    means 0) and any Topic Alias is 0x94."""
    b = _alias_broker(broker_factory, maximum=0)
    pub, ack = raw(b, "5", "rawpub", clients)
    assert ack.props.get("TopicAliasMaximum", 0) == 0
    pub.publish("zero/alias", b"x", qos=1, props={"TopicAlias": 1})
    _assert_alias_rejected(pub, (RC_TOPIC_ALIAS_INVALID,))


def test_incoming_unmapped_alias_is_an_error(broker_factory, clients):
    """An empty topic with an alias that was never set on this connection cannot be resolved
    (s3.3.2.3.4 / 4.13): DISCONNECT 0x82 Protocol Error (0x94 accepted too), nothing delivered."""
    b = _alias_broker(broker_factory)
    sub = paho(b, "5", "sub", clients)
    sub.subscribe("#", qos=0)
    pub, _ = raw(b, "5", "rawpub", clients)
    pub.publish("", b"x", qos=0, props={"TopicAlias": 2})
    _assert_alias_rejected(pub, (RC_PROTOCOL_ERROR, RC_TOPIC_ALIAS_INVALID))
    sub.expect_no_message(0.5)


def test_incoming_empty_topic_without_alias_is_protocol_error(broker_factory, clients):
    b = _alias_broker(broker_factory)
    pub, _ = raw(b, "5", "rawpub", clients)
    pub.publish("", b"x", qos=1)
    _assert_alias_rejected(pub, (RC_PROTOCOL_ERROR,))


def test_incoming_alias_mappings_do_not_survive_reconnect(broker_factory, clients):
    """s3.3.2.3.4: alias mappings belong to one Network Connection."""
    b = _alias_broker(broker_factory)
    sub = paho(b, "5", "sub", clients)
    sub.subscribe("conn/#", qos=1)
    pub, _ = raw(b, "5", "rawpub", clients)
    pub.publish("conn/a", b"1", qos=1, props={"TopicAlias": 1})
    pub.expect(PUBACK)
    assert sub.expect_message().topic == "conn/a"
    pub.disconnect()
    pub2, _ = raw(b, "5", "rawpub", clients, clean=False)
    pub2.publish("", b"2", qos=1, props={"TopicAlias": 1})
    _assert_alias_rejected(pub2, (RC_PROTOCOL_ERROR, RC_TOPIC_ALIAS_INVALID))
    sub.expect_no_message(0.5)


# ------------------------------------------------------------------ topic aliases: broker -> client
def _resolve(packets, mapping, maximum):
    """Resolve outgoing aliases like a client would; returns [(topic, payload)]."""
    out = []
    for p in publishes(packets):
        alias = p.props.get("TopicAlias")
        if alias is not None:
            assert 1 <= alias <= maximum, "alias %d outside 1..%d" % (alias, maximum)
            if p.topic:
                mapping[alias] = p.topic
            else:
                assert alias in mapping, "empty topic with unmapped alias %d" % alias
        else:
            assert p.topic, "empty topic without alias: %r" % p
        out.append((p.topic or mapping[alias], p.payload))
    return out


def test_outgoing_topic_alias_second_delivery_uses_alias(broker, clients):
    """A client announcing Topic Alias Maximum gets aliases from the broker: the first delivery on
    a topic carries topic + alias, the next one an empty topic name with that alias."""
    sub, _ = raw(broker, "5", "rawsub", clients, props={"TopicAliasMaximum": 2})
    sub.subscribe([("oa/#", 1)])
    pub = paho(broker, "5", "pub", clients)
    pub.publish("oa/x", b"1", qos=1)
    p1 = sub.expect(PUBLISH)
    sub.puback(p1.packet_id)
    pub.publish("oa/x", b"2", qos=1)
    p2 = sub.expect(PUBLISH)
    sub.puback(p2.packet_id)
    assert p1.topic == "oa/x" and p1.payload == b"1"
    alias = p1.props.get("TopicAlias")
    assert alias in (1, 2), p1
    assert p2.topic == "" and p2.props.get("TopicAlias") == alias and p2.payload == b"2", p2


def test_outgoing_topic_aliases_stay_within_client_maximum(broker, clients):
    """Many topics, client maximum 2: every alias is in 1..2, and every delivery resolves to the
    right topic (a remapped alias carries the new topic name first)."""
    sub, _ = raw(broker, "5", "rawsub", clients, props={"TopicAliasMaximum": 2})
    sub.subscribe([("many/#", 0)])
    pub = paho(broker, "5", "pub", clients)
    sent = []
    for i in range(30):
        t = "many/t%d" % (i * 7 % 5)
        sent.append((t, str(i).encode()))
        pub.publish(t, str(i).encode(), qos=0)
    packets = []
    deadline = time.time() + TIMEOUT
    while len(publishes(packets)) < len(sent) and time.time() < deadline:
        packets += sub.recv_all(0.5)
    assert _resolve(packets, {}, 2) == sent


def test_no_outgoing_alias_without_client_maximum(broker, clients):
    """A client that announces no Topic Alias Maximum (= 0) never gets a Topic Alias (s3.1.2.11.8)."""
    sub, _ = raw(broker, "5", "rawsub", clients)
    sub.subscribe([("na/#", 0)])
    pub = paho(broker, "5", "pub", clients)
    for i in range(4):
        pub.publish("na/x", str(i).encode())
    got = []
    deadline = time.time() + TIMEOUT
    while len(got) < 4 and time.time() < deadline:
        got += publishes(sub.recv_all(0.5))
    assert [(p.topic, p.payload) for p in got] == [("na/x", str(i).encode()) for i in range(4)]
    assert not any("TopicAlias" in p.props for p in got)


def test_outgoing_aliases_reset_on_new_connection(broker, clients):
    """Outgoing aliases are per connection: after reconnecting, the first delivery on a topic
    carries the full topic name again."""
    pub = paho(broker, "5", "pub", clients)
    for attempt in range(2):
        sub, _ = raw(broker, "5", "rawsub", clients, props={"TopicAliasMaximum": 3})
        sub.subscribe([("rc/t", 0)])
        pub.publish("rc/t", b"a%d" % attempt)
        p = sub.expect(PUBLISH)
        assert p.topic == "rc/t" and p.payload == b"a%d" % attempt, p
        pub.publish("rc/t", b"b%d" % attempt)
        p = sub.expect(PUBLISH)
        assert p.payload == b"b%d" % attempt
        sub.disconnect()


# ------------------------------------------------------------------ payloads
def test_empty_and_large_payloads(broker, version, clients):
    sub = paho(broker, version, "sub", clients)
    sub.subscribe("pl/#", qos=1)
    pub = paho(broker, version, "pub", clients)
    big = bytes(range(256)) * 1024  # 256 KiB, below the default 1 MiB maximum packet size
    pub.publish("pl/empty", b"", qos=1)
    pub.publish("pl/big", big, qos=1)
    m1, m2 = sub.expect_messages(2)
    assert (m1.topic, m1.payload) == ("pl/empty", b"")
    assert (m2.topic, m2.payload) == ("pl/big", big)


def test_publish_properties_do_not_leak_topic_alias_to_paho(broker_factory, clients):
    """A v5 publisher's incoming alias is resolved before routing: a plain paho subscriber (no
    Topic Alias Maximum) sees the real topic and no TopicAlias property."""
    b = _alias_broker(broker_factory)
    sub = paho(b, "5", "sub", clients)
    sub.subscribe("leak/#", qos=0)
    pub, _ = raw(b, "5", "rawpub", clients)
    pub.publish("leak/t", b"1", props={"TopicAlias": 3})
    pub.publish("", b"2", props={"TopicAlias": 3})
    for payload in (b"1", b"2"):
        m = sub.expect_message()
        assert (m.topic, m.payload) == ("leak/t", payload)
        assert not hasattr(m.properties, "TopicAlias")


# ------------------------------------------------------------------ large and fragmented packets
def test_large_payloads_arrive_intact_whatever_the_read_boundaries(broker, version):
    """The broker reads into a per-worker buffer and keeps only an incomplete packet per
    connection; a large one is read straight into its own buffer once its length is known.
    Payloads far larger than one read (64 KiB), sent whole, sent in small pieces with pauses, and
    packed several to a send, all arrive byte for byte and in order."""
    sub = raw_client(broker, version, "big-sub")
    sub.subscribe([("big/t", 0)])
    pub = raw_client(broker, version, "big-pub")
    payloads = [bytes((i * 7 + j) % 251 for j in range(n))
                for i, n in enumerate((200_000, 900_000, 70_000, 65_536, 1, 300_000))]
    # 1: whole packets, one send each.
    pub.send(publish_packet("big/t", payloads[0], qos=0, version=pub.version))
    pub.send(publish_packet("big/t", payloads[1], qos=0, version=pub.version))
    # 2: one packet in 997-byte pieces with pauses (the broker sees it arrive over many reads).
    pkt = publish_packet("big/t", payloads[2], qos=0, version=pub.version)
    for off in range(0, len(pkt), 997):
        pub.send(pkt[off:off + 997])
        if off % (997 * 10) == 0:
            time.sleep(0.002)
    # 3: three packets in one send, the boundaries falling mid-read.
    pub.send(b"".join(publish_packet("big/t", p, qos=0, version=pub.version)
                      for p in payloads[3:]))
    got = [sub.expect(PUBLISH, timeout=TIMEOUT).payload for _ in payloads]
    assert [len(g) for g in got] == [len(p) for p in payloads]
    assert got == payloads
    pub.close()
    sub.close()


def raw_client(broker, version, cid):
    c = RawClient(broker.port, version)
    assert c.connect(cid).rc == 0
    return c


def test_qos0_backpressure_drops_then_clears_once_the_subscriber_reads(broker_factory):
    """A QoS 0 subscriber that stops reading gets its socket backlog capped: the broker drops
    QoS 0 messages for it (on the subscriber's worker and, through the congested-session set, on
    the publishers' workers), counted as qos0_backpressure. Once it reads again the mark is
    cleared everywhere: later messages from publishers on both workers all arrive."""
    broker = broker_factory(config={"workers": 2})
    dropped = "shardmq_broker_messages_dropped_total"
    sub = raw_client(broker, 5, "bp-sub")  # connections go round-robin over the two workers
    # bp/sync at QoS 1: queued, never dropped for congestion, so it marks the end of the backlog.
    sub.subscribe([("bp/#", 0), ("bp/sync", 1)])
    pubs = [raw_client(broker, 5, "bp-pub-%d" % i) for i in range(2)]
    chunk = b"".join(publish_packet("bp/%d" % i, b"y" * 1000, qos=0, version=5)
                     for i in range(100))
    # The subscriber reads nothing while ~24 MB are published (bounded loop).
    for _ in range(120):
        for p in pubs:
            p.send(chunk)
    pubs[0].publish_qos("bp/sync", b"s", qos=1)  # the broker has taken in everything
    pubs[1].publish_qos("bp/sync", b"s", qos=1)
    assert broker.metric(dropped, reason="qos0_backpressure") > 0
    # The subscriber catches up; the backlog ends with the two sync messages.
    syncs = 0
    deadline = time.time() + 60
    while syncs < 2 and time.time() < deadline:
        p = sub.recv(max(0.1, deadline - time.time()))
        if p.type == PUBLISH and p.topic == "bp/sync":
            syncs += 1
    assert syncs == 2
    before = broker.metric(dropped, reason="qos0_backpressure")
    for i, p in enumerate(pubs):
        p.send(publish_packet("bp/after", b"after-%d" % i, qos=0, version=5))
    got = sorted(sub.expect(PUBLISH, timeout=TIMEOUT).payload for _ in pubs)
    assert got == [b"after-0", b"after-1"]
    assert broker.metric(dropped, reason="qos0_backpressure") == before
    for c in pubs + [sub]:
        c.close()
