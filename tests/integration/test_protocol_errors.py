"""Protocol violations and malformed packets.

v5: DISCONNECT with the right reason code, then close (or CONNACK with an error code during
CONNECT). 3.1.1: the connection is just closed (no DISCONNECT; no CONNACK for a malformed
CONNECT, [MQTT-3.1.4-1]). In every case the broker keeps running and other clients are
unaffected.
"""
import random
import time

import pytest

import rawmqtt as R
from rawmqtt import RawClient, make_packet, u16, utf8

MALFORMED, PROTOCOL = R.RC_MALFORMED, R.RC_PROTOCOL_ERROR


def V(version):
    return 5 if version == "5" else 4


def empty_props(v):
    return b"\x00" if v == 5 else b""


@pytest.fixture
def bystander(broker):
    """A 3.1.1 and a v5 client subscribed to everything; must be unaffected by the errors."""
    old = R.connected(broker.port, 4, "bystander-311")
    assert old.subscribe([("#", 1)]).rcs == [1]
    new = R.connected(broker.port, 5, "bystander-5")
    assert new.subscribe([("#", 1)]).rcs == [1]
    return [old, new]


def assert_unaffected(broker, bystander, forbidden=()):
    """The broker runs, a new client can publish, bystanders get it and nothing forbidden."""
    assert broker.alive(), "broker died"
    pub = R.connected(broker.port, 5, "after-error-%d" % random.randrange(1 << 30))
    pub.publish_qos("by/ok", b"still-working", qos=1)
    for b in bystander:
        pubs = b.collect_publishes(1)
        pubs += [p for p in b.recv_all(0.2) if p.type == R.PUBLISH]
        payloads = [p.payload for p in pubs]
        assert b"still-working" in payloads, payloads
        for f in forbidden:
            assert f not in payloads, "invalid packet's message was delivered: %r" % payloads
        assert b.ping().type == R.PINGRESP
    pub.disconnect()


def expect_error(c, version, rcs):
    """v5: DISCONNECT with a reason in rcs, then close. 3.1.1: close without any packet."""
    if isinstance(rcs, int):
        rcs = (rcs,)
    assert c.wait_closed(), "connection left open after a protocol violation"
    got = [p for p in c.before_close if p.type != R.PUBLISH]
    if version == "5":
        assert got and got[-1].type == R.DISCONNECT, "no DISCONNECT before close: %r" % got
        assert got[-1].rc in rcs, "DISCONNECT reason 0x%02x, expected one of %s" % (
            got[-1].rc, ["0x%02x" % r for r in rcs])
    else:
        assert got == [], "3.1.1 connection must just be closed, got %r" % got


def connected(broker, version, cid="offender", **kw):
    return R.connected(broker.port, version, cid, **kw)


# ------------------------------------------------------------------ errors after CONNECT
# name -> (builder(v) -> bytes, v5 reason codes accepted)
AFTER_CONNECT = {
    # [MQTT-3.3.1-4] both QoS bits set: malformed
    "publish_qos3": (lambda v: make_packet(R.PUBLISH, 0x6, utf8("pe/t") + u16(1) + empty_props(v)
                                           + b"bad-qos3"), (MALFORMED,)),
    # [MQTT-2.1.3-1] fixed header flags
    "subscribe_flags_0": (lambda v: make_packet(R.SUBSCRIBE, 0x0, u16(1) + empty_props(v) +
                                                utf8("pe/t") + b"\x00"), (MALFORMED,)),
    "unsubscribe_flags_0": (lambda v: make_packet(R.UNSUBSCRIBE, 0x0, u16(1) + empty_props(v) +
                                                  utf8("pe/t")), (MALFORMED,)),
    "pubrel_flags_0": (lambda v: make_packet(R.PUBREL, 0x0, u16(1)), (MALFORMED,)),
    "pingreq_flags_1": (lambda v: make_packet(R.PINGREQ, 0x1, b""), (MALFORMED,)),
    "disconnect_flags_1": (lambda v: make_packet(R.DISCONNECT, 0x1, b""), (MALFORMED,)),
    "pingreq_with_body": (lambda v: make_packet(R.PINGREQ, 0x0, b"\x00"), (MALFORMED,)),
    # remaining length longer than 4 bytes
    "remaining_length_5_bytes": (lambda v: b"\x30\xff\xff\xff\xff\x7f",
                                 (MALFORMED, R.RC_PACKET_TOO_LARGE)),
    "reserved_type_0": (lambda v: b"\x00\x00", (MALFORMED, PROTOCOL)),
    "server_only_connack": (lambda v: b"\x20\x02\x00\x00", (MALFORMED, PROTOCOL)),
    "server_only_suback": (lambda v: make_packet(R.SUBACK, 0, u16(1) + empty_props(v) + b"\x00"),
                           (MALFORMED, PROTOCOL)),
    # [MQTT-3.1.0-2] second CONNECT
    "second_connect": (lambda v: R.connect_packet("offender", v), (PROTOCOL,)),
    # [MQTT-1.5.4-1] ill-formed UTF-8 / U+0000
    "topic_invalid_utf8": (lambda v: R.publish_packet(b"pe/\xc0\x80", b"bad-utf8", version=v),
                           (MALFORMED,)),
    "topic_surrogate": (lambda v: R.publish_packet(b"pe/\xed\xa0\x80", b"bad-utf8", version=v),
                        (MALFORMED,)),
    "topic_nul": (lambda v: R.publish_packet("pe/a\x00b", b"bad-nul", version=v), (MALFORMED,)),
    # [MQTT-3.3.2-2] wildcards in a topic name
    "topic_wildcard_plus": (lambda v: R.publish_packet("pe/+/x", b"bad-plus", version=v),
                            (MALFORMED, PROTOCOL, R.RC_TOPIC_NAME_INVALID)),
    "topic_wildcard_hash": (lambda v: R.publish_packet("pe/#", b"bad-hash", qos=1, version=v),
                            (MALFORMED, PROTOCOL, R.RC_TOPIC_NAME_INVALID)),
    # [MQTT-2.2.1-3] QoS>0 needs a non-zero packet id
    "publish_packet_id_0": (lambda v: R.publish_packet("pe/t", b"bad-pid0", qos=1, packet_id=0,
                                                       version=v), (MALFORMED, PROTOCOL)),
    # topic length field longer than the packet
    "topic_length_overflow": (lambda v: make_packet(R.PUBLISH, 0, u16(200) + b"pe/t"),
                              (MALFORMED,)),
    # SUBSCRIBE / UNSUBSCRIBE without filters [MQTT-3.8.3-2] [MQTT-3.10.3-2]
    "subscribe_no_filters": (lambda v: make_packet(R.SUBSCRIBE, 0x2, u16(1) + empty_props(v)),
                             (PROTOCOL, MALFORMED)),
    "unsubscribe_no_filters": (lambda v: make_packet(R.UNSUBSCRIBE, 0x2, u16(1) + empty_props(v)),
                               (PROTOCOL, MALFORMED)),
    # Requested QoS 3
    "subscribe_qos3": (lambda v: R.subscribe_packet(1, [("pe/t", 3)], version=v),
                       (PROTOCOL, MALFORMED)),
    # Reserved option bits [MQTT-3.8.3-5]
    "subscribe_reserved_bits": (lambda v: R.subscribe_packet(1, [("pe/t", 0xC1)], version=v),
                                (MALFORMED,)),
    "subscribe_filter_invalid_utf8": (lambda v: R.subscribe_packet(1, [(b"pe/\xff", 0)],
                                                                   version=v), (MALFORMED,)),
    "subscribe_packet_id_0": (lambda v: R.subscribe_packet(0, [("pe/t", 0)], version=v),
                              (MALFORMED, PROTOCOL)),
}


@pytest.mark.parametrize("case", sorted(AFTER_CONNECT))
def test_violation_after_connect(broker, bystander, version, case):
    build, rcs = AFTER_CONNECT[case]
    c = connected(broker, version)
    c.send(build(V(version)))
    expect_error(c, version, rcs)
    assert_unaffected(broker, bystander, forbidden=(b"bad-qos3", b"bad-utf8", b"bad-nul",
                                                    b"bad-plus", b"bad-hash", b"bad-pid0"))


V5_ONLY = {
    # [MQTT-3.8.3-?] Retain Handling 3 is a protocol error
    "subscribe_retain_handling_3": (R.subscribe_packet(1, [("pe/t", 0x30)]), (PROTOCOL,)),
    # [MQTT-3.8.3-4] No Local on a shared subscription
    "shared_subscription_no_local": (R.subscribe_packet(1, [("$share/g/pe/t", 0x04)]),
                                     (PROTOCOL,)),
    # Property given twice
    "duplicate_property": (R.publish_packet("pe/t", b"bad-dup", props=[
        ("MessageExpiryInterval", 10), ("MessageExpiryInterval", 20)]), (PROTOCOL,)),
    # Unknown property identifier: malformed
    "unknown_property": (make_packet(R.PUBLISH, 0, utf8("pe/t") + b"\x02\x7f\x00" + b"bad-prop"),
                         (MALFORMED,)),
    # Property not allowed in PUBLISH
    "property_wrong_packet": (R.publish_packet("pe/t", b"bad-prop2",
                                               props={"SessionExpiryInterval": 5}), (MALFORMED,)),
    # [MQTT-3.3.4-6] Subscription Identifier from a client
    "publish_with_subscription_identifier": (R.publish_packet("pe/t", b"bad-subid",
                                                              props={"SubscriptionIdentifier": 3}),
                                             (PROTOCOL,)),
    # Property length longer than the packet
    "property_length_overflow": (make_packet(R.PUBLISH, 0, utf8("pe/t") + b"\x40\x01\x00"),
                                 (MALFORMED,)),
    # Topic aliases [MQTT-3.3.2-8] [MQTT-3.3.2-9]
    "topic_alias_0": (R.publish_packet("pe/t", b"bad-alias", props={"TopicAlias": 0}),
                      (R.RC_TOPIC_ALIAS_INVALID,)),
    "topic_alias_over_maximum": (R.publish_packet("pe/t", b"bad-alias",
                                                  props={"TopicAlias": 65}),
                                 (R.RC_TOPIC_ALIAS_INVALID,)),
    "empty_topic_unknown_alias": (R.publish_packet("", b"bad-alias", props={"TopicAlias": 3}),
                                  (PROTOCOL,)),
    "empty_topic_without_alias": (R.publish_packet("", b"bad-alias"), (PROTOCOL,)),
    # AUTH without an Authentication Method in CONNECT
    "auth_without_method": (make_packet(R.AUTH, 0, b"\x18\x00"), (PROTOCOL, MALFORMED)),
}


@pytest.mark.parametrize("case", sorted(V5_ONLY))
def test_v5_violation_after_connect(broker, bystander, case):
    data, rcs = V5_ONLY[case]
    c = connected(broker, "5")
    c.send(data)
    expect_error(c, "5", rcs)
    assert_unaffected(broker, bystander, forbidden=(b"bad-dup", b"bad-prop", b"bad-prop2",
                                                    b"bad-subid", b"bad-alias"))


def test_v311_empty_topic_closes(broker, bystander):
    c = connected(broker, "3.1.1")
    c.send(R.publish_packet("", b"bad-empty", version=4))
    expect_error(c, "3.1.1", ())
    assert_unaffected(broker, bystander, forbidden=(b"bad-empty",))


def test_v311_subscribe_option_reserved_bits(broker, bystander):
    """3.1.1 options: bits 2-7 are reserved [MQTT-3.8.3-4]."""
    c = connected(broker, "3.1.1")
    c.send(R.subscribe_packet(1, [("pe/t", 0x04)], version=4))
    expect_error(c, "3.1.1", ())
    assert_unaffected(broker, bystander)


def test_v5_disconnect_setting_expiry_after_zero_is_protocol_error(broker, bystander):
    """[MQTT-3.14.2-2]: Session Expiry 0 at CONNECT, non-zero in DISCONNECT -> not a valid
    DISCONNECT: DISCONNECT 0x82 from the server, and the will is published."""
    w = R.connected(broker.port, 5, "pe-will-watch")
    w.subscribe([("pe/will", 1)])
    c = connected(broker, "5", will={"topic": "pe/will", "payload": b"will-after-bad-disconnect"})
    c.send(R.disconnect_packet(0, props={"SessionExpiryInterval": 30}))
    expect_error(c, "5", (PROTOCOL,))
    assert w.collect_publishes(1)[0].payload == b"will-after-bad-disconnect"
    assert_unaffected(broker, bystander)


def test_error_in_pipelined_packets_stops_processing(broker, bystander, version):
    """Packets after the bad one in the same TCP segment are not processed."""
    v = V(version)
    c = connected(broker, version)
    c.send(AFTER_CONNECT["publish_qos3"][0](v) +
           R.publish_packet("pe/after", b"after-bad-packet", version=v))
    expect_error(c, version, (MALFORMED,))
    assert_unaffected(broker, bystander, forbidden=(b"after-bad-packet",))


# ------------------------------------------------------------------ valid edge cases
def test_v5_pubrel_for_unknown_packet_id(broker, version):
    """PUBREL for an id with no QoS 2 flow: PUBCOMP (v5: reason 0x92), connection stays up."""
    c = connected(broker, version)
    c.pubrel(4242)
    comp = c.expect(R.PUBCOMP)
    assert comp.packet_id == 4242
    if version == "5":
        assert comp.rc in (R.RC_SUCCESS, R.RC_PACKET_ID_NOT_FOUND), comp
    assert c.ping().type == R.PINGRESP


def test_puback_for_unknown_packet_id_is_tolerated(broker, version):
    c = connected(broker, version)
    c.puback(999)
    c.pubrec(998)
    c.pubcomp(997)
    c.send(R.pingreq_packet())
    while True:
        p = c.recv()   # Closed here = the broker dropped the connection
        if p.type == R.PINGRESP:
            break
        # A PUBREL answering the stray PUBREC is allowed (v5: reason 0x92).
        assert p.type == R.PUBREL and p.packet_id == 998, p
    assert c.ping().type == R.PINGRESP


def test_connect_sent_byte_by_byte(broker, version):
    c = RawClient(broker.port, version)
    data = R.connect_packet("bytewise", V(version), keepalive=30,
                            will={"topic": "bw/will", "payload": b"w"}) + \
        R.subscribe_packet(1, [("bw/t", 1)], version=V(version)) + \
        R.publish_packet("bw/t", b"x" * 300, qos=1, packet_id=2, version=V(version))
    for i in range(len(data)):
        c.send(data[i:i + 1])
        if i % 50 == 0:
            time.sleep(0.005)
    assert c.expect(R.CONNACK).rc == 0
    assert c.expect(R.SUBACK).rcs == [1]
    got = {p.type: p for p in (c.recv(), c.recv())}
    assert got[R.PUBACK].packet_id == 2
    assert got[R.PUBLISH].payload == b"x" * 300


def test_pipelined_packets_in_one_segment(broker, version):
    v = V(version)
    c = RawClient(broker.port, version)
    c.send(R.connect_packet("pipelined", v) + R.subscribe_packet(1, [("pl/t", 0)], version=v) +
           b"".join(R.publish_packet("pl/t", b"%d" % i, version=v) for i in range(20)) +
           R.pingreq_packet())
    assert c.expect(R.CONNACK).rc == 0
    # The broker may start sending matching PUBLISHes before the SUBACK ([MQTT-3.8.4]).
    pubs, subacks, pingresps = [], [], 0
    while not (subacks and pingresps and len(pubs) >= 20):
        p = c.recv()
        if p.type == R.PINGRESP:
            pingresps += 1
        elif p.type == R.SUBACK:
            subacks.append(p.packet_id)
        else:
            assert p.type == R.PUBLISH, p
            pubs.append(p.payload)
    assert subacks == [1] and pingresps == 1
    assert pubs == [b"%d" % i for i in range(20)]


def test_v311_password_without_username_refused_v5_accepted(broker, version):
    """3.1.1 [MQTT-3.1.2-22]: password flag needs the user name flag. v5 allows it."""
    c = RawClient(broker.port, version)
    c.send(R.connect_packet("pw-only", V(version), password=b"secret"))
    if version == "5":
        assert c.expect(R.CONNACK).rc == 0
    else:
        assert c.wait_closed()
        assert not [p for p in c.before_close if p.type == R.CONNACK and p.rc == 0]


# ------------------------------------------------------------------ errors in CONNECT
def _bad_connect(v, **kw):
    return R.connect_packet("bad-connect", v, **kw)


def _patch_flags(pkt, set_bits=0, clear_bits=0):
    """Change the CONNECT flags byte of a connect_packet() result (no-props-dependent offset)."""
    b = bytearray(pkt)
    # fixed header (1 + varint) + protocol name (2 + len) + level (1)
    i = 1
    while b[i] & 0x80:
        i += 1
    i += 1
    name_len = (b[i] << 8) | b[i + 1]
    flags_at = i + 2 + name_len + 1
    b[flags_at] = (b[flags_at] | set_bits) & ~clear_bits & 0xFF
    return bytes(b)


CONNECT_ERRORS = {
    "reserved_flag": lambda v: _bad_connect(v, reserved_flag=True),
    "will_qos_3": lambda v: _patch_flags(_bad_connect(v, will={"topic": "w", "payload": b""}),
                                         set_bits=0x18),
    "will_retain_without_will": lambda v: _patch_flags(_bad_connect(v), set_bits=0x20),
    "will_qos_without_will": lambda v: _patch_flags(_bad_connect(v), set_bits=0x08),
    "client_id_invalid_utf8": lambda v: R.connect_packet(b"bad\xff\xfe", v),
    "will_topic_wildcard": lambda v: _bad_connect(v, will={"topic": "w/#", "payload": b""}),
    "truncated_body": lambda v: make_packet(R.CONNECT, 0, _bad_connect(v)[2:12]),
    "connect_flags_nonzero_header": lambda v: bytes([0x11]) + _bad_connect(v)[1:],
}


@pytest.mark.parametrize("case", sorted(CONNECT_ERRORS))
def test_malformed_connect_refused(broker, bystander, version, case):
    c = RawClient(broker.port, version)
    c.send(CONNECT_ERRORS[case](V(version)))
    assert c.wait_closed(), "malformed CONNECT (%s) not closed" % case
    acks = [p for p in c.before_close if p.type == R.CONNACK]
    if version == "5":
        # [MQTT-3.2.2-8]-style: a CONNACK, if any, carries an error reason code.
        for a in acks:
            assert a.rc >= 0x80, "CONNACK 0x%02x for malformed CONNECT" % a.rc
    else:
        assert acks == [], "3.1.1: close without CONNACK [MQTT-3.1.4-1], got %r" % acks
    assert_unaffected(broker, bystander)


V5_CONNECT_ERRORS = {
    "receive_maximum_0": {"ReceiveMaximum": 0},
    "maximum_packet_size_0": {"MaximumPacketSize": 0},
    "duplicate_session_expiry": [("SessionExpiryInterval", 1), ("SessionExpiryInterval", 2)],
    "request_problem_information_2": {"RequestProblemInformation": 2},
}


@pytest.mark.parametrize("case", sorted(V5_CONNECT_ERRORS))
def test_v5_connect_property_errors(broker, bystander, case):
    c = RawClient(broker.port, 5)
    c.send(R.connect_packet("bad-props", 5, props=V5_CONNECT_ERRORS[case]))
    assert c.wait_closed(), "CONNECT with %s accepted and left open" % case
    for a in c.before_close:
        assert a.type == R.CONNACK and a.rc in (MALFORMED, PROTOCOL), a
    assert_unaffected(broker, bystander)


# ------------------------------------------------------------------ not CONNECT first
NOT_CONNECT = {
    "pingreq": R.pingreq_packet(),
    "publish": R.publish_packet("pe/first", b"first-not-connect", version=4),
    "subscribe": R.subscribe_packet(1, [("#", 0)], version=4),
    "disconnect": R.disconnect_packet(version=4),
    "http_get": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    "tls_client_hello": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40,
}


@pytest.mark.parametrize("case", sorted(NOT_CONNECT))
def test_first_packet_not_connect_closes(broker, bystander, case):
    c = RawClient(broker.port, 4)
    c.send(NOT_CONNECT[case])
    assert c.wait_closed(), "connection whose first packet is %s left open" % case
    assert c.before_close == [], "broker answered a non-CONNECT first packet: %r" % c.before_close
    assert_unaffected(broker, bystander, forbidden=(b"first-not-connect",))


# ------------------------------------------------------------------ robustness
def test_garbage_from_many_connections(broker, bystander):
    rnd = random.Random(1234)
    conns = []
    for i in range(30):
        c = RawClient(broker.port, 4)
        if i % 2:
            c.send(R.connect_packet("garbage-%d" % i, 4 if i % 4 == 1 else 5))
        c.send(bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 400))))
        conns.append(c)
    for c in conns:
        c.shutdown()
    assert_unaffected(broker, bystander)


def test_truncated_packets_then_close(broker, bystander, version):
    v = V(version)
    for n in range(1, 12):
        c = connected(broker, version, "trunc-%d" % n)
        c.send(R.publish_packet("pe/trunc", b"trunc-" + b"x" * 50, qos=1, version=v)[:n])
        c.shutdown()
    assert_unaffected(broker, bystander, forbidden=(b"trunc-" + b"x" * 50,))


def test_close_right_after_connect_without_reading(broker, bystander, version):
    for i in range(20):
        c = RawClient(broker.port, version)
        c.send(R.connect_packet("hasty-%d" % i, V(version)) +
               R.subscribe_packet(1, [("pe/#", 2)], version=V(version)))
        c.shutdown()
    assert_unaffected(broker, bystander)
