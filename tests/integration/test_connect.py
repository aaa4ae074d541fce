"""CONNECT / CONNACK: protocol names and levels, client ids, CONNACK properties, Maximum Packet
Size and Receive Maximum in both directions."""
import subprocess
import time

import pytest

from conftest import TIMEOUT, Client, PacketTypes, mosquitto_version_flag, props
import rawmqtt as R
from rawmqtt import RawClient


def raw_version(version):
    return 5 if version == "5" else 4


# ------------------------------------------------------------------ protocol name and level
def test_connect_accepted(broker, version):
    c = Client(broker, version, "plain-" + version)
    ack = c.connect()
    assert ack["session_present"] is False
    raw = RawClient(broker.port, version)
    ack = raw.connect("raw-" + version)
    assert ack.rc == 0 and ack.session_present is False
    assert ack.raw[2] == 0, "CONNACK acknowledge flags must be 0 for a clean session"
    raw.disconnect()
    c.close()


def test_v311_connack_is_exactly_four_bytes(broker):
    raw = RawClient(broker.port, "3.1.1")
    ack = raw.connect("v311-connack")
    assert ack.raw == b"\x20\x02\x00\x00"


def test_mqtt31_mqisdp_accepted(broker):
    raw = RawClient(broker.port, 3)
    ack = raw.connect("mqisdp-raw")
    assert ack.raw == b"\x20\x02\x00\x00"
    assert raw.subscribe([("v31/t", 1)]).rcs == [1]
    raw.publish("v31/t", b"hello31", qos=1, packet_id=9)
    got = {p.type: p for p in (raw.recv(), raw.recv())}
    assert got[R.PUBACK].packet_id == 9
    assert got[R.PUBLISH].payload == b"hello31" and got[R.PUBLISH].topic == "v31/t"
    raw.disconnect()

    # paho speaking 3.1 and mosquitto clients speaking 3.1 interoperate with a 3.1.1 client.
    p31 = Client(broker, "3.1", "paho31")
    p31.connect()
    p31.subscribe("v31/#", qos=1)
    sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port),
                            "-V", mosquitto_version_flag("3.1"), "-i", "mosq31", "-t", "v31/m",
                            "-q", "1", "-C", "1", "-W", str(int(TIMEOUT))],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(0.5)  # let mosquitto_sub subscribe
        pub = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port),
                              "-V", mosquitto_version_flag("3.1"), "-t", "v31/m", "-q", "1",
                              "-m", "from-mosquitto-31"], timeout=TIMEOUT, capture_output=True)
        assert pub.returncode == 0, pub.stderr
        out, err = sub.communicate(timeout=TIMEOUT + 2)
    finally:
        if sub.poll() is None:
            sub.kill()
            sub.wait()
    assert out.strip() == b"from-mosquitto-31", (out, err)
    m = p31.expect_message()
    assert m.topic == "v31/m" and m.payload == b"from-mosquitto-31"
    p31.close()


def test_unsupported_protocol_level_v311_gets_return_code_1(broker):
    """3.1.1 [MQTT-3.1.2-2]: CONNACK 0x01 (unacceptable protocol level), then close."""
    for level in (0, 2, 6, 7, 255):
        raw = RawClient(broker.port, "3.1.1")
        raw.send(R.connect_packet("badlevel%d" % level, 4, protocol_level=level))
        ack = raw.expect(R.CONNACK)
        assert ack.raw == b"\x20\x02\x00\x01", "level %d: %r" % (level, ack)
        assert raw.wait_closed(), "level %d: connection left open" % level
    _assert_broker_serves(broker)


def test_unsupported_protocol_level_v5_layout_refused(broker):
    """A v5-style CONNECT (with properties) but protocol level 6: the broker refuses with
    0x84 Unsupported Protocol Version (or the 3.1.1 code 0x01, since it cannot know which
    version the client speaks) and closes."""
    raw = RawClient(broker.port, 5)
    raw.send(R.connect_packet("badlevel-v5", 5, protocol_level=6,
                              props={"SessionExpiryInterval": 10}))
    ack = raw.expect(R.CONNACK)
    assert ack.rc in (0x01, R.RC_UNSUPPORTED_PROTOCOL_VERSION), ack
    assert raw.wait_closed()
    _assert_broker_serves(broker)


@pytest.mark.parametrize("name,level", [(b"MQTX", 4), (b"MQTT", 3), (b"MQIsdp", 4),
                                        (b"mqtt", 5)])
def test_wrong_protocol_name_closes(broker, name, level):
    """[MQTT-3.1.2-1]: a wrong protocol name (or name/level mismatch) is not processed."""
    raw = RawClient(broker.port, 4)
    raw.send(R.connect_packet("badname", 4, protocol_name=name, protocol_level=level))
    assert raw.wait_closed(), "connection with protocol name %r level %d left open" % (name, level)
    for p in raw.before_close:
        assert not (p.type == R.CONNACK and p.rc == 0), "CONNACK success for %r: %r" % (name, p)
    _assert_broker_serves(broker)


def _assert_broker_serves(broker):
    assert broker.alive()
    c = RawClient(broker.port, 4)
    assert c.connect("still-alive").rc == 0
    assert c.ping().type == R.PINGRESP
    c.disconnect()


# ------------------------------------------------------------------ client identifiers
def test_v5_empty_client_id_gets_assigned_identifier(broker):
    a = RawClient(broker.port, 5)
    ack_a = a.connect("")
    assert ack_a.rc == 0
    id_a = ack_a.props.get("AssignedClientIdentifier")
    assert id_a, "no Assigned Client Identifier: %r" % ack_a
    b = RawClient(broker.port, 5)
    ack_b = b.connect("")
    id_b = ack_b.props.get("AssignedClientIdentifier")
    assert ack_b.rc == 0 and id_b and id_b != id_a
    # Both connections stay up (no takeover between them) and work.
    assert a.ping().type == R.PINGRESP
    assert b.subscribe([("assigned/t", 0)]).rcs == [0]
    a.publish("assigned/t", b"hi")
    assert b.expect(R.PUBLISH).payload == b"hi"
    a.disconnect()
    b.disconnect()


def test_v5_paho_empty_client_id(broker):
    c = Client(broker, "5", "")
    ack = c.connect()
    assigned = ack["props"].AssignedClientIdentifier
    assert assigned
    c.subscribe("e/t", qos=1)
    c.publish("e/t", b"m", qos=1)
    assert c.expect_message().payload == b"m"
    c.close()


def test_v5_client_id_given_is_not_reassigned(broker):
    a = RawClient(broker.port, 5)
    ack = a.connect("my-own-id")
    assert ack.rc == 0 and "AssignedClientIdentifier" not in ack.props


def test_v311_empty_client_id_with_clean_session_accepted(broker):
    a = RawClient(broker.port, 4)
    ack = a.connect("", clean=True)
    assert ack.raw == b"\x20\x02\x00\x00"
    b = RawClient(broker.port, 4)
    assert b.connect("", clean=True).rc == 0
    # Two anonymous clients do not take each other over.
    assert a.ping().type == R.PINGRESP
    assert b.ping().type == R.PINGRESP
    a.disconnect()
    b.disconnect()


def test_v311_empty_client_id_without_clean_session_rejected(broker):
    """[MQTT-3.1.3-8]: CONNACK return code 0x02 (identifier rejected), then close."""
    a = RawClient(broker.port, 4)
    ack = a.connect("", clean=False)
    assert ack.raw == b"\x20\x02\x00\x02", ack
    assert a.wait_closed()


# ------------------------------------------------------------------ CONNACK properties
def test_connack_v5_properties_from_config(broker_factory):
    b = broker_factory({"mqtt": {"receive_maximum": 10, "topic_alias_maximum": 5,
                                 "max_packet_size": 1000}})
    raw = RawClient(b.port, 5)
    ack = raw.connect("props-check")
    assert ack.rc == 0
    p = ack.props
    assert p.get("ReceiveMaximum") == 10, p
    assert p.get("TopicAliasMaximum") == 5, p
    assert p.get("MaximumPacketSize") == 1000, p
    assert "MaximumQoS" not in p, "QoS 2 is supported: Maximum QoS must be absent (%r)" % p
    # Absent means "available" for these; if present they must be 1.
    for name in ("RetainAvailable", "WildcardSubscriptionAvailable",
                 "SubscriptionIdentifierAvailable", "SharedSubscriptionAvailable"):
        assert p.get(name, 1) == 1, (name, p)
    assert "AssignedClientIdentifier" not in p
    # Each property at most once (except user properties).
    names = [k for k, _ in p.items if k != "UserProperty"]
    assert len(names) == len(set(names)), p
    raw.disconnect()


def test_connack_v5_default_properties(broker):
    raw = RawClient(broker.port, 5)
    p = raw.connect("defaults").props
    assert p.get("ReceiveMaximum") == 1024, p
    assert p.get("TopicAliasMaximum") == 64, p
    assert p.get("MaximumPacketSize") == 1048576, p
    raw.disconnect()


def test_connack_v5_paho_sees_properties(broker_factory):
    b = broker_factory({"mqtt": {"receive_maximum": 7, "topic_alias_maximum": 3}})
    c = Client(b, "5", "paho-props")
    ack = c.connect(properties=props(PacketTypes.CONNECT, SessionExpiryInterval=0))
    assert ack["props"].ReceiveMaximum == 7
    assert ack["props"].TopicAliasMaximum == 3
    c.close()


# ------------------------------------------------------------------ Maximum Packet Size
def _publish_of_size(size, version, topic="mps/t", qos=0):
    """(packet, payload_len): a PUBLISH of exactly `size` bytes (fixed header included)."""
    payload_len = size
    while True:
        pkt = R.publish_packet(topic, b"x" * payload_len, qos=qos, packet_id=1,
                               version=raw_version(version))
        if len(pkt) == size:
            return pkt, payload_len
        payload_len -= len(pkt) - size
        assert payload_len >= 0


def test_packet_over_broker_maximum_refused(broker_factory, version):
    b = broker_factory({"mqtt": {"max_packet_size": 200}})
    sub = Client(b, version, "mps-sub")
    sub.connect()
    sub.subscribe("mps/#")
    raw = RawClient(b.port, version)
    assert raw.connect("mps-pub").rc == 0
    # Exactly at the limit: accepted and delivered.
    at_limit, n = _publish_of_size(200, version)
    raw.send(at_limit)
    m = sub.expect_message()
    assert m.topic == "mps/t" and m.payload == b"x" * n
    assert raw.ping().type == R.PINGRESP
    # One byte over: v5 DISCONNECT 0x95 (Packet too large), 3.1.1 close; not delivered.
    raw.send(_publish_of_size(201, version)[0])
    if version == "5":
        raw.expect_disconnect(R.RC_PACKET_TOO_LARGE)
    assert raw.wait_closed()
    assert raw.before_close == [], raw.before_close
    sub.expect_no_message(0.5)
    # Others unaffected.
    sub.publish("mps/t", b"after", qos=1)
    assert sub.expect_message().payload == b"after"
    sub.close()


def test_large_packet_announced_but_not_sent_is_refused(broker_factory, version):
    """The remaining length alone tells the packet is too large: refused without the body."""
    b = broker_factory({"mqtt": {"max_packet_size": 200}})
    raw = RawClient(b.port, version)
    assert raw.connect("mps-header").rc == 0
    raw.send(b"\x30" + R.varint(100000) + b"\x00\x05mps/t")
    if version == "5":
        raw.expect_disconnect(R.RC_PACKET_TOO_LARGE)
    assert raw.wait_closed()
    _assert_broker_serves(b)


def test_broker_respects_client_maximum_packet_size(broker):
    """[MQTT-3.1.2-24]: the server MUST NOT send packets exceeding the client's Maximum Packet
    Size; such messages are discarded for that client only."""
    small = RawClient(broker.port, 5)
    assert small.connect("mps-small", props={"MaximumPacketSize": 128}).rc == 0
    assert small.subscribe([("big/#", 1)]).rcs == [1]
    other = Client(broker, "5", "mps-other")
    other.connect()
    other.subscribe("big/#", qos=1)
    pub = Client(broker, "5", "mps-pub")
    pub.connect()
    sequence = [("big/a", b"small-1", 1), ("big/b", b"L" * 500, 1), ("big/c", b"small-2", 0),
                ("big/d", b"M" * 300, 0), ("big/e", b"small-3", 1)]
    for topic, payload, qos in sequence:
        pub.publish(topic, payload, qos=qos)
    got = []
    deadline = time.time() + TIMEOUT
    while len(got) < 3 and time.time() < deadline:
        p = small.recv(max(0.1, deadline - time.time()))
        assert len(p.raw) <= 128, "broker sent a %d-byte packet over the client's max 128: %r" % (
            len(p.raw), p)
        if p.type == R.PUBLISH:
            got.append(p.payload)
            if p.qos:
                small.puback(p.packet_id)
    assert got == [b"small-1", b"small-2", b"small-3"]
    for p in small.recv_all(0.5):
        assert len(p.raw) <= 128, p
        assert p.type != R.PUBLISH, "unexpected %r" % p
    # The client without a limit got everything, in order.
    msgs = other.expect_messages(5)
    assert [m.payload for m in msgs] == [s[1] for s in sequence]
    assert small.ping().type == R.PINGRESP
    pub.close()
    other.close()


# ------------------------------------------------------------------ Receive Maximum
def _drive_window(sub, window, total, timeout=TIMEOUT):
    """Read PUBLISHes without acking until the flow stalls, check the stall is at `window`,
    ack the oldest, repeat. Returns the payloads in delivery order."""
    unacked = []
    delivered = []
    deadline = time.time() + timeout
    while len(delivered) < total:
        assert time.time() < deadline, "only %d of %d delivered" % (len(delivered), total)
        p = sub.try_recv(0.4)
        if p is not None:
            assert p.type == R.PUBLISH, p
            assert not p.dup, p
            unacked.append(p)
            delivered.append(p.payload)
            assert len(unacked) <= window, \
                "%d unacknowledged QoS>0 PUBLISHes in flight, window is %d" % (len(unacked),
                                                                               window)
            continue
        # Stalled: must be because the window is full (or everything left is in flight).
        assert len(unacked) == min(window, total - (len(delivered) - len(unacked))), \
            "flow stalled with %d in flight (window %d), %d/%d delivered" % (
                len(unacked), window, len(delivered), total)
        first = unacked.pop(0)
        sub.puback(first.packet_id)
    for p in unacked:
        sub.puback(p.packet_id)
    return delivered


def _window_subscriber(broker, version, cid, window):
    sub = RawClient(broker.port, version)
    if version == "5":
        ack = sub.connect(cid, props={"ReceiveMaximum": window})
    else:
        ack = sub.connect(cid)
    assert ack.rc == 0
    return sub


def test_broker_inflight_limited_to_receive_maximum(broker_factory, version):
    """v5: the client's Receive Maximum; 3.1.1: mqtt.max_inflight_out."""
    window = 2
    b = broker_factory({"mqtt": {"max_inflight_out": window}} if version != "5" else
                       {"mqtt": {"max_inflight_out": 50}})
    sub = _window_subscriber(b, version, "rm-sub", window)
    assert sub.subscribe([("rm/t", 1)]).rcs == [1]
    pub = Client(b, version, "rm-pub")
    pub.connect()
    payloads = [b"m%d" % i for i in range(7)]
    for p in payloads:
        pub.publish("rm/t", p, qos=1)   # the broker acks the publisher regardless
    assert _drive_window(sub, window, len(payloads)) == payloads
    assert sub.recv_all(0.4) == []
    pub.close()


def test_qos2_counts_against_receive_maximum_until_pubcomp(broker_factory, version):
    b = broker_factory({"mqtt": {"max_inflight_out": 1}} if version != "5" else {})
    sub = _window_subscriber(b, version, "rm2-sub", 1)
    assert sub.subscribe([("rm2/t", 2)]).rcs == [2]
    pub = Client(b, version, "rm2-pub")
    pub.connect()
    pub.publish("rm2/t", b"first", qos=2)
    pub.publish("rm2/t", b"second", qos=2)
    p1 = sub.expect(R.PUBLISH)
    assert p1.payload == b"first" and p1.qos == 2
    assert sub.try_recv(0.6) is None, "second PUBLISH sent with the window full"
    sub.pubrec(p1.packet_id)
    rel = sub.expect(R.PUBREL)
    assert rel.packet_id == p1.packet_id and rel.flags == 0x2
    assert sub.try_recv(0.6) is None, "second PUBLISH sent before PUBCOMP of the first"
    sub.pubcomp(p1.packet_id)
    p2 = sub.expect(R.PUBLISH)
    assert p2.payload == b"second"
    sub.pubrec(p2.packet_id)
    sub.expect(R.PUBREL)
    sub.pubcomp(p2.packet_id)
    pub.close()


def test_client_within_receive_maximum_is_fine(broker_factory):
    b = broker_factory({"mqtt": {"receive_maximum": 2}})
    raw = RawClient(b.port, 5)
    assert raw.connect("rmx-ok").props.get("ReceiveMaximum") == 2
    for pid in (1, 2):
        raw.publish("rmx/t", b"q2", qos=2, packet_id=pid)
        assert raw.expect(R.PUBREC).packet_id == pid
    raw.pubrel(1)
    assert raw.expect(R.PUBCOMP).packet_id == 1
    raw.publish("rmx/t", b"q2", qos=2, packet_id=3)   # 2 in flight again: allowed
    assert raw.expect(R.PUBREC).packet_id == 3
    raw.pubrel(2)
    raw.pubrel(3)
    assert {raw.expect(R.PUBCOMP).packet_id, raw.expect(R.PUBCOMP).packet_id} == {2, 3}
    # QoS 1 is acknowledged at once, so many in a row never exceed the window.
    for pid in range(10, 20):
        raw.publish("rmx/t", b"q1", qos=1, packet_id=pid)
    assert sorted(raw.expect(R.PUBACK).packet_id for _ in range(10)) == list(range(10, 20))
    raw.disconnect()


def test_client_exceeding_receive_maximum_gets_0x93(broker_factory):
    """[MQTT-3.3.4-9]: more than Receive Maximum unacknowledged QoS>0 PUBLISHes ->
    DISCONNECT 0x93 Receive Maximum exceeded."""
    b = broker_factory({"mqtt": {"receive_maximum": 2}})
    watcher = Client(b, "5", "rmx-watch")
    watcher.connect()
    watcher.subscribe("rmx/#", qos=2)
    raw = RawClient(b.port, 5)
    assert raw.connect("rmx-bad").rc == 0
    for pid in (1, 2):
        raw.publish("rmx/t", b"q2-%d" % pid, qos=2, packet_id=pid)
        assert raw.expect(R.PUBREC).packet_id == pid
    raw.publish("rmx/t", b"q2-3", qos=2, packet_id=3)
    raw.expect_disconnect(R.RC_RECEIVE_MAXIMUM_EXCEEDED)
    assert raw.wait_closed()
    # Broker keeps serving others.
    watcher.publish("rmx/other", b"ok", qos=1)
    seen = []
    while b"ok" not in seen:
        seen.append(watcher.expect_message().payload)
    seen += [m.payload for m in _drain(watcher)]
    assert b"q2-3" not in seen, "PUBLISH beyond Receive Maximum was delivered"
    watcher.close()


def _drain(client, wait=0.3):
    out = []
    while True:
        try:
            out.append(client.messages.get(timeout=wait))
        except Exception:
            return out
