"""Sessions: clean start / clean session, persistence and expiry, offline queues, message expiry
while queued, DUP resend, QoS 2 exactly once across reconnects, session takeover."""
import subprocess
import time

from conftest import TIMEOUT, Client, PacketTypes, mosquitto_version_flag, props
import rawmqtt as R
from rawmqtt import RawClient


def connect_session(broker, version, cid, clean=False, expiry=60, **kw):
    """paho client with a persistent (clean=False) or clean session. v5: Session Expiry Interval
    `expiry` (None = property absent = 0)."""
    if version == "5":
        c = Client(broker, version, cid)
        p = props(PacketTypes.CONNECT, SessionExpiryInterval=expiry) if expiry is not None else None
        ack = c.connect(clean_start=clean, properties=p, **kw)
    else:
        c = Client(broker, version, cid, clean_session=clean)
        ack = c.connect(**kw)
    return c, ack


def raw_session(broker, version, cid, clean=False, expiry=60, **kw):
    r = RawClient(broker.port, version)
    p = {"SessionExpiryInterval": expiry} if version == "5" and expiry is not None else None
    ack = r.connect(cid, clean=clean, props=p, **kw)
    assert ack.rc == 0, ack
    return r, ack


def publisher(broker, version="5", cid="publisher"):
    """Raw publisher: pub.publish_qos(topic, payload, qos, props=...) completes each flow."""
    return R.connected(broker.port, version, cid)


def drain(client, wait=0.5):
    out = []
    while True:
        try:
            out.append(client.messages.get(timeout=wait))
        except Exception:
            return out


# ------------------------------------------------------------------ clean / persistent
def test_clean_session_keeps_nothing(broker, version):
    c, ack = connect_session(broker, version, "clean-1", clean=True)
    assert ack["session_present"] is False
    c.subscribe("cs/t", qos=1)
    c.disconnect()
    pub = publisher(broker)
    pub.publish_qos("cs/t", b"while-away", qos=1)
    c, ack = connect_session(broker, version, "clean-1", clean=True)
    assert ack["session_present"] is False
    pub.publish_qos("cs/t", b"after", qos=1)
    c.expect_no_message(0.7)   # neither queued nor subscribed any more
    c.close()
    pub.disconnect()


def test_session_present_flag(broker, version):
    c, ack = connect_session(broker, version, "sp-1")
    assert ack["session_present"] is False, "fresh session reported as present"
    c.subscribe("sp/t", qos=1)
    c.disconnect()
    c, ack = connect_session(broker, version, "sp-1")
    assert ack["session_present"] is True
    c.disconnect()
    # Clean start, and (v5) Session Expiry 0, so this session ends with the connection.
    c, ack = connect_session(broker, version, "sp-1", clean=True, expiry=None)
    assert ack["session_present"] is False, "clean start must report no session"
    c.disconnect()
    c, ack = connect_session(broker, version, "sp-1")
    assert ack["session_present"] is False, "the clean connection discarded the old session"
    c.close()


def test_persistent_session_queues_qos1_qos2_in_order(broker, version):
    c, _ = raw_session(broker, version, "queue-1")
    assert c.subscribe([("q/#", 2)]).rcs == [2]
    c.disconnect()
    pub = publisher(broker)
    expected = []
    for i in range(10):
        qos = 1 + i % 2
        pub.publish_qos("q/%d" % i, b"msg-%d" % i, qos=qos)
        expected.append(("q/%d" % i, b"msg-%d" % i, qos))
    c, ack = raw_session(broker, version, "queue-1")
    assert ack.session_present is True
    got = [(p.topic, p.payload, p.qos) for p in c.collect_publishes(10)]
    assert got == expected, "queued messages not delivered in publish order"
    assert [p for p in c.recv_all(0.5) if p.type == R.PUBLISH] == []
    # The subscription survived too: live messages keep flowing.
    pub.publish_qos("q/live", b"live", qos=1)
    assert c.collect_publishes(1)[0].payload == b"live"
    c.disconnect()
    pub.disconnect()


def test_persistent_session_paho_receives_queued(broker, version):
    c, _ = connect_session(broker, version, "queue-paho")
    c.subscribe("qp/#", qos=2)
    c.disconnect()
    pub = publisher(broker)
    for i in range(6):
        pub.publish_qos("qp/%d" % i, b"m%d" % i, qos=1 + i % 2)
    c, ack = connect_session(broker, version, "queue-paho")
    assert ack["session_present"] is True
    got = c.expect_messages(6) + drain(c)
    # paho hands QoS 2 messages to the application at PUBREL, so only per-QoS order is stable.
    assert [m.payload for m in got if m.qos == 1] == [b"m0", b"m2", b"m4"]
    assert [m.payload for m in got if m.qos == 2] == [b"m1", b"m3", b"m5"]
    c.close()
    pub.disconnect()


def test_qos0_not_queued_for_offline_session(broker, version):
    c, _ = connect_session(broker, version, "q0-1")
    c.subscribe("q0/one", qos=1)
    c.subscribe("q0/zero", qos=0)
    c.disconnect()
    pub = publisher(broker)
    pub.publish_qos("q0/one", b"qos0-publish", qos=0)          # QoS 0 message
    pub.publish_qos("q0/zero", b"downgraded-to-0", qos=1)      # delivered at QoS 0 (sub max 0)
    pub.publish_qos("q0/one", b"marker", qos=1)
    c, ack = connect_session(broker, version, "q0-1")
    assert ack["session_present"] is True
    got = [m.payload for m in c.expect_messages(1)] + [m.payload for m in drain(c)]
    assert got == [b"marker"], got
    c.close()
    pub.disconnect()


def test_clean_start_discards_queued_messages_and_subscriptions(broker, version):
    c, _ = connect_session(broker, version, "discard-1")
    c.subscribe("dq/t", qos=1)
    c.disconnect()
    pub = publisher(broker)
    pub.publish_qos("dq/t", b"queued", qos=1)
    c, ack = connect_session(broker, version, "discard-1", clean=True)
    assert ack["session_present"] is False
    pub.publish_qos("dq/t", b"after", qos=1)
    c.expect_no_message(0.7)
    c.close()
    pub.disconnect()


def test_persistent_session_with_mosquitto_clients(broker, version):
    """mosquitto_sub -c subscribes and exits; mosquitto_pub publishes while it is away; a second
    mosquitto_sub -c with the same id gets the queued messages in order."""
    base = ["-h", "127.0.0.1", "-p", str(broker.port), "-V", mosquitto_version_flag(version)]
    sub_args = base + ["-c", "-i", "mosq-persist", "-q", "1", "-t", "mp/t"]
    if version == "5":
        sub_args += ["-x", "60"]
    r = subprocess.run(["mosquitto_sub"] + sub_args + ["-E"], capture_output=True,
                       timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr
    for i in range(3):
        r = subprocess.run(["mosquitto_pub"] + base + ["-q", "1", "-t", "mp/t", "-m", "m%d" % i],
                           capture_output=True, timeout=TIMEOUT)
        assert r.returncode == 0, r.stderr
    r = subprocess.run(["mosquitto_sub"] + sub_args + ["-C", "3", "-W", str(int(TIMEOUT))],
                       capture_output=True, timeout=TIMEOUT + 5)
    assert r.stdout.split() == [b"m0", b"m1", b"m2"], (r.stdout, r.stderr)


# ------------------------------------------------------------------ expiry
def test_v5_session_expiry_absent_ends_session_at_disconnect(broker):
    c, _ = connect_session(broker, "5", "se0", expiry=None)
    c.subscribe("se0/t", qos=1)
    c.disconnect()
    pub = publisher(broker)
    pub.publish_qos("se0/t", b"lost", qos=1)
    c, ack = connect_session(broker, "5", "se0", expiry=60)
    assert ack["session_present"] is False
    c.expect_no_message(0.5)
    c.close()
    pub.disconnect()


def test_v5_session_expires_after_interval(broker):
    """Both after a normal DISCONNECT and after a lost connection."""
    pub = publisher(broker)
    gone = {}
    for how in ("disconnect", "drop"):
        c, _ = connect_session(broker, "5", "se1-" + how, expiry=1)
        c.subscribe("se1/" + how, qos=1)
        getattr(c, how)()
        pub.publish_qos("se1/" + how, b"lost", qos=1)
    time.sleep(2.5)
    for how in ("disconnect", "drop"):
        c, ack = raw_session(broker, "5", "se1-" + how, expiry=60)
        gone[how] = not ack.session_present
        assert c.try_recv(0.3) is None
        c.disconnect()
    assert gone == {"disconnect": True, "drop": True}, "session outlived its 1 s expiry"
    pub.disconnect()


def test_v5_session_kept_within_interval(broker):
    pub = publisher(broker)
    for how in ("disconnect", "drop"):
        c, _ = connect_session(broker, "5", "se3-" + how, expiry=4)
        c.subscribe("se3/" + how, qos=1)
        getattr(c, how)()
        pub.publish_qos("se3/" + how, b"kept-" + how.encode(), qos=1)
    time.sleep(0.5)
    for how in ("disconnect", "drop"):
        c, ack = raw_session(broker, "5", "se3-" + how, expiry=4)
        assert ack.session_present is True, how
        assert c.collect_publishes(1)[0].payload == b"kept-" + how.encode()
        c.disconnect()
    pub.disconnect()


def test_v5_disconnect_shortens_session_expiry(broker):
    raw, _ = raw_session(broker, "5", "se-short", expiry=60)
    raw.subscribe([("ses/t", 1)])
    raw.disconnect(0, props={"SessionExpiryInterval": 0})
    pub = publisher(broker)
    pub.publish_qos("ses/t", b"lost", qos=1)
    raw, ack = raw_session(broker, "5", "se-short", expiry=60)
    assert ack.session_present is False, "DISCONNECT with Session Expiry 0 did not end the session"
    assert raw.try_recv(0.5) is None
    pub.disconnect()


def test_v5_disconnect_extends_session_expiry(broker):
    raw, _ = raw_session(broker, "5", "se-long", expiry=1)
    raw.subscribe([("sel/t", 1)])
    raw.disconnect(0, props={"SessionExpiryInterval": 30})
    pub = publisher(broker)
    pub.publish_qos("sel/t", b"kept", qos=1)
    time.sleep(2.0)
    raw, ack = raw_session(broker, "5", "se-long", expiry=30)
    assert ack.session_present is True, "DISCONNECT with Session Expiry 30 was ignored"
    p = raw.expect(R.PUBLISH)
    assert p.payload == b"kept"
    raw.puback(p.packet_id)
    pub.disconnect()


def test_v5_session_expiry_capped_by_config(broker_factory):
    b = broker_factory({"mqtt": {"max_session_expiry": 1}})
    raw, ack = raw_session(b, "5", "se-cap", expiry=100)
    assert ack.props.get("SessionExpiryInterval") == 1, \
        "broker uses a shorter expiry than requested but does not say so: %r" % ack
    raw.subscribe([("cap/t", 1)])
    raw.disconnect()
    time.sleep(2.5)
    raw, ack = raw_session(b, "5", "se-cap", expiry=100)
    assert ack.session_present is False


def test_v3_session_expiry(broker_factory):
    expiring = broker_factory({"mqtt": {"v3_session_expiry": 1}}, name="expiring")
    forever = broker_factory({}, name="forever")
    for b in (expiring, forever):
        c, ack = connect_session(b, "3.1.1", "v3-exp")
        assert ack["session_present"] is False
        c.subscribe("v3e/t", qos=1)
        c.disconnect()
        pub = publisher(b, "3.1.1")
        pub.publish_qos("v3e/t", b"queued", qos=1)
        pub.disconnect()
    time.sleep(2.5)
    c, ack = connect_session(expiring, "3.1.1", "v3-exp")
    assert ack["session_present"] is False, "v3_session_expiry=1 session still there after 2.5 s"
    c.expect_no_message(0.5)
    c.close()
    c, ack = connect_session(forever, "3.1.1", "v3-exp")
    assert ack["session_present"] is True, "v3_session_expiry=0 must mean never expire"
    assert c.expect_message().payload == b"queued"
    c.close()


def test_message_expiry_while_queued(broker, version):
    """Expired messages are dropped from the offline queue; the others carry the remaining
    interval (v5 [MQTT-3.3.2-6])."""
    c, _ = connect_session(broker, version, "mexp")
    c.subscribe("mexp/#", qos=1)
    c.disconnect()
    pub = publisher(broker, "5")
    pub.publish_qos("mexp/short", b"short", qos=1,
                    props={"MessageExpiryInterval": 1})
    pub.publish_qos("mexp/long", b"long", qos=1,
                    props={"MessageExpiryInterval": 30})
    pub.publish_qos("mexp/none", b"none", qos=1)
    time.sleep(2.2)
    c, ack = connect_session(broker, version, "mexp")
    assert ack["session_present"] is True
    msgs = c.expect_messages(2)
    msgs += drain(c)
    assert [m.payload for m in msgs] == [b"long", b"none"], [m.payload for m in msgs]
    if version == "5":
        left = getattr(msgs[0].properties, "MessageExpiryInterval", None)
        assert left is not None and 25 <= left <= 28, \
            "Message Expiry Interval not decremented by the queued time: %r" % left
        assert not hasattr(msgs[1].properties, "MessageExpiryInterval")
    c.close()
    pub.disconnect()


# ------------------------------------------------------------------ resend / exactly once
def test_unacked_qos1_resent_with_dup_after_reconnect(broker, version):
    sub, _ = raw_session(broker, version, "dup1")
    assert sub.subscribe([("dup/t", 1)]).rcs == [1]
    pub = publisher(broker)
    pub.publish_qos("dup/t", b"d1", qos=1)
    first = sub.expect(R.PUBLISH)
    assert first.payload == b"d1" and not first.dup and first.qos == 1
    sub.shutdown()   # no PUBACK
    # Until the broker has seen the close, d2 may still go out on the dead connection (then it
    # is in flight and correctly resent with DUP=1 too): wait until only the publisher is left.
    def connected():   # per-worker gauge, summed
        return sum(v for (name, _), v in broker.metrics().items()
                   if name == "shardmq_broker_clients_connected")
    deadline = time.time() + TIMEOUT
    while connected() != 1 and time.time() < deadline:
        time.sleep(0.02)
    assert connected() == 1
    pub.publish_qos("dup/t", b"d2", qos=1)   # queued while away
    sub, ack = raw_session(broker, version, "dup1")
    assert ack.session_present is True
    again = sub.expect(R.PUBLISH)
    assert again.payload == b"d1"
    assert again.dup, "resent PUBLISH must have DUP=1 [MQTT-3.3.1-1]"
    assert again.packet_id == first.packet_id, "resend must keep the packet id [MQTT-4.4.0-1]"
    sub.puback(again.packet_id)
    nxt = sub.expect(R.PUBLISH)
    assert nxt.payload == b"d2" and not nxt.dup
    sub.puback(nxt.packet_id)
    assert sub.try_recv(0.5) is None
    sub.disconnect()
    # Acknowledged messages are not resent on the next reconnect.
    sub, ack = raw_session(broker, version, "dup1")
    assert ack.session_present is True
    assert sub.try_recv(0.7) is None
    pub.disconnect()


def test_qos2_outgoing_publish_resent_if_not_pubrec(broker, version):
    sub, _ = raw_session(broker, version, "q2o-a")
    sub.subscribe([("q2o/t", 2)])
    pub = publisher(broker)
    pub.publish_qos("q2o/t", b"x", qos=2)
    first = sub.expect(R.PUBLISH)
    assert first.qos == 2 and not first.dup
    sub.shutdown()
    sub, ack = raw_session(broker, version, "q2o-a")
    assert ack.session_present
    again = sub.expect(R.PUBLISH)
    assert again.dup and again.packet_id == first.packet_id and again.payload == b"x"
    sub.pubrec(again.packet_id)
    rel = sub.expect(R.PUBREL)
    assert rel.packet_id == first.packet_id
    sub.pubcomp(rel.packet_id)
    assert sub.try_recv(0.5) is None
    pub.disconnect()


def test_qos2_outgoing_pubrel_resent_not_publish(broker, version):
    """After PUBREC the message is delivered: a reconnect resends PUBREL only (exactly once)."""
    sub, _ = raw_session(broker, version, "q2o-b")
    sub.subscribe([("q2o/t", 2)])
    pub = publisher(broker)
    pub.publish_qos("q2o/t", b"once", qos=2)
    p = sub.expect(R.PUBLISH)
    sub.pubrec(p.packet_id)
    rel = sub.expect(R.PUBREL)
    assert rel.packet_id == p.packet_id
    sub.shutdown()   # no PUBCOMP
    sub, ack = raw_session(broker, version, "q2o-b")
    assert ack.session_present
    rel2 = sub.expect(R.PUBREL)
    assert rel2.packet_id == p.packet_id and rel2.flags == 0x2
    sub.pubcomp(rel2.packet_id)
    rest = sub.recv_all(0.7)
    assert not [x for x in rest if x.type == R.PUBLISH], "message delivered twice: %r" % rest
    pub.disconnect()


def test_qos2_incoming_exactly_once_across_reconnect(broker, version):
    watcher = Client(broker, version, "q2i-watch")
    watcher.connect()
    watcher.subscribe("q2i/#", qos=2)
    raw, _ = raw_session(broker, version, "q2i-pub")
    # (a) PUBLISH, PUBREC, connection lost, PUBLISH resent with DUP, PUBREL.
    raw.publish("q2i/a", b"A", qos=2, packet_id=7)
    assert raw.expect(R.PUBREC).packet_id == 7
    raw.shutdown()
    raw, ack = raw_session(broker, version, "q2i-pub")
    assert ack.session_present is True
    raw.publish("q2i/a", b"A", qos=2, packet_id=7, dup=True)
    assert raw.expect(R.PUBREC).packet_id == 7
    raw.pubrel(7)
    assert raw.expect(R.PUBCOMP).packet_id == 7
    # (b) PUBLISH, PUBREC, connection lost, only PUBREL after reconnect.
    raw.publish("q2i/b", b"B", qos=2, packet_id=8)
    assert raw.expect(R.PUBREC).packet_id == 8
    raw.shutdown()
    raw, ack = raw_session(broker, version, "q2i-pub")
    assert ack.session_present is True
    raw.pubrel(8)
    assert raw.expect(R.PUBCOMP).packet_id == 8
    # (c) duplicate PUBLISH on the same connection before PUBREL.
    raw.publish("q2i/c", b"C", qos=2, packet_id=9)
    assert raw.expect(R.PUBREC).packet_id == 9
    raw.publish("q2i/c", b"C", qos=2, packet_id=9, dup=True)
    assert raw.expect(R.PUBREC).packet_id == 9
    raw.pubrel(9)
    assert raw.expect(R.PUBCOMP).packet_id == 9
    msgs = watcher.expect_messages(3) + drain(watcher, 0.7)
    assert sorted(m.payload for m in msgs) == [b"A", b"B", b"C"], \
        "QoS 2 not exactly once: %r" % [m.payload for m in msgs]
    raw.disconnect()
    watcher.close()


# ------------------------------------------------------------------ takeover
def test_session_takeover_keeps_session(broker, version):
    first, _ = raw_session(broker, version, "take-1")
    assert first.subscribe([("take/#", 1)]).rcs == [1]
    second, ack = raw_session(broker, version, "take-1")
    assert ack.session_present is True
    if version == "5":
        d = first.expect_disconnect(R.RC_SESSION_TAKEN_OVER)
        assert d.type == R.DISCONNECT
    assert first.wait_closed(), "old connection not closed on takeover"
    assert first.before_close == [], first.before_close
    pub = publisher(broker)
    pub.publish_qos("take/x", b"to-new", qos=1)
    p = second.expect(R.PUBLISH)
    assert p.payload == b"to-new"
    second.puback(p.packet_id)
    assert second.ping().type == R.PINGRESP
    pub.disconnect()


def test_session_takeover_moves_inflight_messages(broker, version):
    first, _ = raw_session(broker, version, "take-2")
    first.subscribe([("take2/t", 1)])
    pub = publisher(broker)
    pub.publish_qos("take2/t", b"inflight", qos=1)
    p1 = first.expect(R.PUBLISH)   # not acknowledged
    second, ack = raw_session(broker, version, "take-2")
    assert ack.session_present is True
    p2 = second.expect(R.PUBLISH)
    assert p2.payload == b"inflight" and p2.dup and p2.packet_id == p1.packet_id
    second.puback(p2.packet_id)
    pub.disconnect()


def test_session_takeover_with_clean_start_discards(broker, version):
    first, _ = raw_session(broker, version, "take-3")
    first.subscribe([("take3/t", 1)])
    second, ack = raw_session(broker, version, "take-3", clean=True)
    assert ack.session_present is False
    if version == "5":
        first.expect_disconnect(R.RC_SESSION_TAKEN_OVER)
    assert first.wait_closed()
    pub = publisher(broker)
    pub.publish_qos("take3/t", b"x", qos=1)
    assert second.try_recv(0.7) is None
    pub.disconnect()


def test_session_takeover_paho(broker, version):
    a, _ = connect_session(broker, version, "take-paho")
    a.subscribe("tp/t", qos=1)
    b, ack = connect_session(broker, version, "take-paho")
    assert ack["session_present"] is True
    assert a.disconnected.wait(TIMEOUT), "first paho client not disconnected"
    a.c.loop_stop()
    b.publish("tp/t", b"self", qos=1)
    assert b.expect_message().payload == b"self"
    b.close()


def test_repeated_takeovers(broker, version):
    """Many quick takeovers: the broker stays consistent, the last one holds the session."""
    clients = []
    for i in range(8):
        c, ack = raw_session(broker, version, "flap")
        if i == 0:
            c.subscribe([("flap/t", 1)])
        else:
            assert ack.session_present is True
        clients.append(c)
    for c in clients[:-1]:
        assert c.wait_closed(), "an old connection was not closed"
    pub = publisher(broker)
    pub.publish_qos("flap/t", b"last", qos=1)
    p = clients[-1].expect(R.PUBLISH)
    assert p.payload == b"last"
    pub.disconnect()


# ------------------------------------------------------------------ queue limits and windows
def test_queued_delivery_respects_receive_maximum(broker_factory, version):
    """The offline queue is replayed through the in-flight window (v5 Receive Maximum of the
    new connection; 3.1.1 mqtt.max_inflight_out), not dumped all at once."""
    b = broker_factory({"mqtt": {"max_inflight_out": 2 if version != "5" else 50}})
    props_ = {"ReceiveMaximum": 2} if version == "5" else {}
    sub, _ = raw_session(b, version, "qwin")
    sub.subscribe([("qwin/t", 1)])
    sub.disconnect()
    pub = publisher(b)
    for i in range(6):
        pub.publish_qos("qwin/t", b"w%d" % i, qos=1)
    sub = RawClient(b.port, version)
    p = dict(props_, SessionExpiryInterval=60) if version == "5" else None
    ack = sub.connect("qwin", clean=False, props=p)
    assert ack.session_present is True
    got = []
    while len(got) < 6:
        batch = [x for x in sub.recv_all(0.4) if x.type == R.PUBLISH]
        assert batch, "delivery stalled after %d messages" % len(got)
        assert len(batch) <= 2, "%d unacknowledged PUBLISHes sent, window is 2" % len(batch)
        for x in batch:
            sub.puback(x.packet_id)
        got += [x.payload for x in batch]
    assert got == [b"w%d" % i for i in range(6)]
    pub.disconnect()


def test_offline_queue_limit(broker_factory, version):
    b = broker_factory({"mqtt": {"max_queued_messages": 5}})
    sub, _ = raw_session(b, version, "qlim")
    sub.subscribe([("qlim/t", 1)])
    sub.disconnect()
    pub = publisher(b)
    for i in range(12):
        pub.publish_qos("qlim/t", b"%02d" % i, qos=1)
    sub, ack = raw_session(b, version, "qlim")
    assert ack.session_present is True
    got = [p.payload for p in sub.collect_publishes(5)]
    got += [p.payload for p in sub.recv_all(0.6) if p.type == R.PUBLISH]
    assert len(got) == 5, "max_queued_messages=5 but %d queued: %r" % (len(got), got)
    assert got == sorted(got), "queue order broken: %r" % got
    # The session still works normally after the overflow.
    pub.publish_qos("qlim/t", b"live", qos=1)
    assert sub.collect_publishes(1)[0].payload == b"live"
    pub.disconnect()


def test_v5_assigned_client_id_session_can_be_resumed(broker):
    raw = RawClient(broker.port, 5)
    ack = raw.connect("", clean=True, props={"SessionExpiryInterval": 60})
    cid = ack.props.get("AssignedClientIdentifier")
    assert cid
    raw.subscribe([("assigned/resume", 1)])
    raw.disconnect()
    pub = publisher(broker)
    pub.publish_qos("assigned/resume", b"for-assigned", qos=1)
    raw, ack = raw_session(broker, "5", cid)
    assert ack.session_present is True
    assert raw.collect_publishes(1)[0].payload == b"for-assigned"
    pub.disconnect()
