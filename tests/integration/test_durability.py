"""Durability across restarts on the same data directory (RocksDB in --data-dir).

Every scenario restarts the broker twice over: after a clean stop (SIGTERM, exit 0) and after a
crash (SIGKILL), for MQTT 3.1.1 and 5, with third-party clients (paho, mosquitto_sub/pub) and the
raw client where the wire must be controlled (packet ids, DUP, withheld acks). What must come
back: persistent sessions (session present = 1) with their subscriptions and options, offline
queues in order, in-flight QoS 1/2 state (resent with DUP and the same packet id; PUBREL, not a
resend, after PUBREC), incoming QoS 2 packet ids (no duplicate delivery of a resent PUBLISH; the
id is free again after PUBCOMP), retained messages, wills (of clients connected when the broker
went down, and pending delayed wills), session expiry counted from the disconnect, queue limits
and the latest-only policy. A corrupt or incompatible data directory is refused at start, with a
message naming it, and left as it was.

The "kill-fsync" variants use storage.durability "fsync": the fsync widens the window between a
packet leaving the broker and its state reaching the disk, so state that a client has seen but
the broker had not yet made durable shows up as a failure instead of passing by luck.
"""
import hashlib
import os
import subprocess
import time

import pytest

from conftest import (TIMEOUT, BrokerProcess, Client, PacketTypes, SubscribeOptions,
                      mosquitto_version_flag, props)
import rawmqtt as R
from rawmqtt import RawClient

HOW = ["stop", "kill"]
HOW_DUR = [pytest.param("stop", "wal", id="stop"), pytest.param("kill", "wal", id="kill"),
           pytest.param("kill", "fsync", id="kill-fsync")]
DROPPED = "shardmq_broker_messages_dropped_total"


# ------------------------------------------------------------------ helpers
def config(durability="wal", **mqtt):
    c = {"storage": {"durability": durability}}
    if mqtt:
        c["mqtt"] = mqtt
    return c


def paho_session(broker, version, cid, expiry=300, **kw):
    """paho client on a persistent session (3.1.1: clean session 0; 5: clean start 0 and Session
    Expiry `expiry`). Returns (client, connack dict)."""
    if version == "5":
        c = Client(broker, version, cid)
        ack = c.connect(clean_start=False,
                        properties=props(PacketTypes.CONNECT, SessionExpiryInterval=expiry), **kw)
    else:
        c = Client(broker, version, cid, clean_session=False)
        ack = c.connect(**kw)
    return c, ack


def raw_session(broker, version, cid, expiry=300, clean=False, **kw):
    """Raw client on a persistent session. Returns (client, CONNACK)."""
    r = RawClient(broker.port, version)
    p = {"SessionExpiryInterval": expiry} if str(version) == "5" else None
    ack = r.connect(cid, clean=clean, props=p, **kw)
    assert ack.rc == 0, ack
    return r, ack


def park(*clients):
    """Stops paho's network thread without sending anything: to the broker the client is still
    connected when it goes down. Call abandon() after the restart."""
    for c in clients:
        c.c.loop_stop()


def abandon(*clients):
    for c in clients:
        s = c.c.socket()
        if s:
            try:
                s.close()
            except OSError:
                pass


def drain_publishes(c, expect=0, quiet=0.7, timeout=TIMEOUT):
    """Reads PUBLISHes from a raw client, completing each QoS flow (PUBACK; PUBREC and PUBCOMP),
    until `expect` arrived (or `timeout` passed) and then nothing came for `quiet` seconds.
    Returns them in arrival order; the caller asserts on what is there."""
    out = []
    deadline = time.time() + timeout
    while True:
        left = deadline - time.time()
        if left <= 0:
            if len(out) < expect:
                return out
            raise AssertionError("PUBLISHes kept coming for %.0fs: %r" % (timeout, out[-5:]))
        try:
            p = c.recv(min(left, quiet) if len(out) >= expect else left)
        except (R.Timeout, R.Closed):
            return out
        if p.type == R.PUBLISH:
            out.append(p)
            if p.qos == 1:
                c.puback(p.packet_id)
            elif p.qos == 2:
                c.pubrec(p.packet_id)
        elif p.type == R.PUBREL:
            c.pubcomp(p.packet_id)


def complete_qos2_publish(pub, topic, payload, packet_id, dup=False):
    pub.publish(topic, payload, qos=2, packet_id=packet_id, dup=dup)
    rec = pub.expect(R.PUBREC)
    assert rec.packet_id == packet_id and rec.rc < 0x80, rec
    pub.pubrel(packet_id)
    comp = pub.expect(R.PUBCOMP)
    assert comp.packet_id == packet_id, comp
    return rec, comp


def drain_paho(c, wait=0.7):
    """Messages a paho Client receives until `wait` seconds pass with nothing new (bounded)."""
    out = []
    for _ in range(10000):
        try:
            out.append(c.messages.get(timeout=wait))
        except Exception:
            break
    return out


def wait_metric(broker, want, name, timeout=5.0, **labels):
    """Polls /metrics until the sample equals `want` (deliveries to sessions on other workers
    are counted asynchronously). Returns the last value."""
    deadline = time.time() + timeout
    while True:
        v = broker.metric(name, **labels)
        if v == want or time.time() > deadline:
            return v
        time.sleep(0.05)


def sleep_until(t):
    d = t - time.monotonic()
    if d > 0:
        time.sleep(d)


def mosq(tool, broker, version, *args, stdin=None, timeout=30):
    r = subprocess.run([tool, "-h", "127.0.0.1", "-p", str(broker.port), "-V",
                        mosquitto_version_flag(version)] + list(args),
                       input=stdin, capture_output=True, timeout=timeout)
    r.text = (r.stdout + r.stderr).decode("utf-8", "replace")
    return r


# ------------------------------------------------------------------ sessions and subscriptions
@pytest.mark.parametrize("how", HOW)
def test_paho_session_and_subscriptions_come_back(broker_factory, version, how):
    broker = broker_factory()
    c, ack = paho_session(broker, version, "dur-subs")
    assert ack["session_present"] is False
    c.subscribe("dur/subs/one", qos=1)
    c.subscribe("dur/subs/+/two", qos=2)
    if version == "5":
        c.subscribe("dur/subs/nl", options=SubscribeOptions(qos=1, noLocal=True))
        c.subscribe("dur/subs/sid/#", qos=1,
                    properties=props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=7))
    park(c)  # still connected when the broker goes down
    broker.restart(how)
    abandon(c)

    c, ack = paho_session(broker, version, "dur-subs")
    assert ack["session_present"] is True, "persistent session lost across %s" % how
    pub = Client(broker, version, "dur-subs-pub")
    pub.connect()
    # No resubscription: the restored subscriptions route these.
    pub.publish("dur/subs/none", b"nobody", qos=1)
    pub.publish("dur/subs/one", b"one", qos=1)
    pub.publish("dur/subs/x/two", b"two", qos=2)
    got = sorted((m.topic, m.payload, m.qos) for m in c.expect_messages(2))
    assert got == [("dur/subs/one", b"one", 1), ("dur/subs/x/two", b"two", 2)], got
    if version == "5":
        c.publish("dur/subs/nl", b"own", qos=1)      # No Local survived: not delivered back
        pub.publish("dur/subs/nl", b"other", qos=1)
        pub.publish("dur/subs/sid/a", b"sid", qos=1)
        got = {m.topic: m for m in c.expect_messages(2)}
        assert sorted(got) == ["dur/subs/nl", "dur/subs/sid/a"], sorted(got)
        assert got["dur/subs/nl"].payload == b"other", "No Local option lost across %s" % how
        sid = getattr(got["dur/subs/sid/a"].properties, "SubscriptionIdentifier", None)
        assert sid == [7], "Subscription Identifier lost across %s: %r" % (how, sid)
    c.expect_no_message(0.5)
    c.close()
    pub.close()


@pytest.mark.parametrize("how", HOW)
def test_mosquitto_clients_session_queue_and_retained(broker_factory, version, how):
    broker = broker_factory()
    sub = ["-c", "-i", "dur-mosq-sub", "-q", "1"]
    r = mosq("mosquitto_sub", broker, version, *sub, "-t", "dur/mq/#", "-E")
    assert r.returncode == 0, r.text
    r = mosq("mosquitto_pub", broker, version, "-q", "1", "-r", "-t", "dur/mqret/t", "-m", "kept")
    assert r.returncode == 0, r.text
    lines = "".join("m%02d\n" % i for i in range(20)).encode()
    r = mosq("mosquitto_pub", broker, version, "-q", "1", "-t", "dur/mq/t", "-l", stdin=lines)
    assert r.returncode == 0, r.text
    r = mosq("mosquitto_pub", broker, version, "-q", "2", "-t", "dur/mq/t2", "-m", "q2")
    assert r.returncode == 0, r.text

    broker.restart(how)
    r = mosq("mosquitto_pub", broker, version, "-q", "1", "-t", "dur/mq/t", "-m", "after")
    assert r.returncode == 0, r.text
    # Subscribes to an unrelated topic only: what arrives comes from the restored session.
    fmt = "MSG|%t|%q|%p"
    r = mosq("mosquitto_sub", broker, version, *sub, "-t", "dur/unrelated", "-C", "22", "-W",
             "15", "-F", fmt)
    msgs = [tuple(l.split("|")[1:]) for l in r.stdout.decode().splitlines()
            if l.startswith("MSG|")]
    on_t = [p for t, q, p in msgs if t == "dur/mq/t"]
    assert on_t == ["m%02d" % i for i in range(20)] + ["after"], \
        "queue across %s, in order:\n%s" % (how, r.text)
    assert ("dur/mq/t2", "1", "q2") in msgs, r.text
    assert len(msgs) == 22, r.text
    # mosquitto_sub -C exits as soon as it has its count, closing the socket without
    # acknowledging the last messages (seen in the broker: PUBACKs stop, no DISCONNECT), so the
    # broker must redeliver those (at least once) - and nothing else.
    r = mosq("mosquitto_sub", broker, version, *sub, "-t", "dur/unrelated", "-C", "30", "-W", "3",
             "-F", fmt)
    again = [tuple(l.split("|")[1:]) for l in r.stdout.decode().splitlines()
             if l.startswith("MSG|")]
    assert set(again) <= set(msgs), "unexpected redelivery: %s" % r.text
    r = mosq("mosquitto_sub", broker, version, "-t", "dur/mqret/#", "-C", "1", "-W", "10", "-F",
             "MSG|%t|%r|%p")
    assert r.stdout.decode().splitlines() == ["MSG|dur/mqret/t|1|kept"], r.text


@pytest.mark.parametrize("how", HOW)
def test_offline_queue_delivered_in_order(broker_factory, version, how):
    broker = broker_factory()
    c, _ = paho_session(broker, version, "dur-queue")
    c.subscribe("dur/q/#", qos=2)
    c.disconnect()
    pub = Client(broker, version, "dur-queue-pub")
    pub.connect()
    sent = []
    for i in range(60):
        qos = 2 if i % 6 == 5 else 1
        topic = "dur/q/two" if qos == 2 else "dur/q/one"
        pub.publish(topic, b"%d-%03d" % (qos, i), qos=qos)   # waits for PUBACK / PUBCOMP
        sent.append((topic, b"%d-%03d" % (qos, i), qos))
    park(pub)
    broker.restart(how)  # right after the last acknowledgement
    abandon(pub)

    c, ack = paho_session(broker, version, "dur-queue")
    assert ack["session_present"] is True
    got = [(m.topic, m.payload, m.qos) for m in c.expect_messages(60)]
    for qos in (1, 2):
        want = [s for s in sent if s[2] == qos]
        have = [g for g in got if g[2] == qos]
        assert have == want, "QoS %d queue across %s: got %r" % (qos, how, have)
    c.expect_no_message(0.5)
    c.close()


@pytest.mark.parametrize("how", HOW)
def test_queue_of_a_discarded_session_does_not_return_with_a_new_one(broker_factory, version,
                                                                      how):
    """A stored message lists the sessions it is queued for by client id. When a session with
    queued messages is discarded (clean start) and a new persistent session takes the same
    client id, the old queue must stay gone, before and after a restart, while another session
    queued on the same messages still gets all of them."""
    broker = broker_factory()
    for cid in ("dur-reuse", "dur-reuse-other"):
        c, _ = paho_session(broker, version, cid)
        c.subscribe("dur/reuse", qos=1)
        c.disconnect()
    pub = Client(broker, version, "dur-reuse-pub")
    pub.connect()
    sent = [b"old-%d" % i for i in range(5)]
    for payload in sent:
        pub.publish("dur/reuse", payload, qos=1)   # waits for PUBACK: queued for both
    pub.disconnect()

    fresh = Client(broker, version, "dur-reuse")   # clean start: the session and its queue go
    fresh.connect()
    fresh.disconnect()
    c, ack = paho_session(broker, version, "dur-reuse")
    assert ack["session_present"] is False
    c.subscribe("dur/elsewhere", qos=1)
    c.expect_no_message(0.5)
    c.disconnect()

    broker.restart(how)
    c, ack = paho_session(broker, version, "dur-reuse")
    assert ack["session_present"] is True
    c.expect_no_message(1.0)   # nothing of the discarded session's queue
    c.close()
    o, ack = paho_session(broker, version, "dur-reuse-other")
    assert ack["session_present"] is True
    assert [m.payload for m in o.expect_messages(len(sent))] == sent
    o.expect_no_message(0.5)
    o.close()


# ------------------------------------------------------------------ in-flight state
@pytest.mark.parametrize("qos", [1, 2])
@pytest.mark.parametrize("how,durability", HOW_DUR)
def test_inflight_resent_with_dup_and_same_packet_id(broker_factory, version, how, durability,
                                                     qos):
    broker = broker_factory(config=config(durability))
    sub, _ = raw_session(broker, version, "dur-inflight")
    assert sub.subscribe([("dur/if", qos)]).rcs == [qos]
    pub = R.connected(broker.port, version, "dur-if-pub")
    pub.publish_qos("dur/if", b"zero", qos=qos)
    assert sub.receive_publish_qos().payload == b"zero"   # completed: must not come back
    time.sleep(0.2)  # let the broker take the final ack in before the next publishes
    for p in (b"a", b"b", b"c"):
        pub.publish_qos("dur/if", p, qos=qos)
    first = sub.collect_publishes(3, ack=False)
    assert [p.payload for p in first] == [b"a", b"b", b"c"]
    broker.restart(how)  # at once: what the client has seen must be durable
    sub.close()
    pub.close()

    sub, ack = raw_session(broker, version, "dur-inflight")
    assert ack.session_present is True
    again = sub.collect_publishes(3, ack=False)
    for f, a in zip(first, again):
        assert (a.payload, a.packet_id, a.qos, a.dup) == (f.payload, f.packet_id, qos, True), \
            "in-flight %r not resent as DUP with packet id %d after %s: %r" % (
                f.payload, f.packet_id, how, again)
    for a in again:
        if qos == 1:
            sub.puback(a.packet_id)
        else:
            sub.pubrec(a.packet_id)
            assert sub.expect(R.PUBREL).packet_id == a.packet_id
            sub.pubcomp(a.packet_id)
    pub = R.connected(broker.port, version, "dur-if-pub")
    pub.publish_qos("dur/if", b"d", qos=qos)
    rest = drain_publishes(sub, expect=1)
    assert [(p.payload, p.dup) for p in rest] == [(b"d", False)], rest
    sub.disconnect()
    pub.disconnect()


@pytest.mark.parametrize("how,durability", HOW_DUR)
def test_qos2_after_pubrec_only_pubrel_is_resent(broker_factory, version, how, durability):
    broker = broker_factory(config=config(durability))
    sub, _ = raw_session(broker, version, "dur-q2out")
    assert sub.subscribe([("dur/q2out", 2)]).rcs == [2]
    pub = R.connected(broker.port, version, "dur-q2out-pub")
    pub.publish_qos("dur/q2out", b"x", qos=2)
    p = sub.expect(R.PUBLISH)
    assert p.qos == 2 and p.payload == b"x"
    sub.pubrec(p.packet_id)
    rel = sub.expect(R.PUBREL)
    assert rel.packet_id == p.packet_id
    broker.restart(how)  # before PUBCOMP
    sub.close()
    pub.close()

    sub, ack = raw_session(broker, version, "dur-q2out")
    assert ack.session_present is True
    first = sub.recv()
    assert first.type == R.PUBREL and first.packet_id == p.packet_id, \
        "expected PUBREL %d after %s, got %r (a resent PUBLISH after PUBREL breaks exactly " \
        "once [MQTT-4.3.3])" % (p.packet_id, how, first)
    sub.pubcomp(p.packet_id)
    rest = sub.recv_all(0.7)
    assert not [x for x in rest if x.type == R.PUBLISH], "message sent again: %r" % rest
    pub = R.connected(broker.port, version, "dur-q2out-pub")
    pub.publish_qos("dur/q2out", b"y", qos=2)
    got = drain_publishes(sub, expect=1)
    assert [(g.payload, g.dup) for g in got] == [(b"y", False)], got
    sub.disconnect()
    pub.disconnect()


@pytest.mark.parametrize("how,durability", HOW_DUR)
def test_qos2_incoming_resend_not_delivered_twice(broker_factory, version, how, durability):
    broker = broker_factory(config=config(durability))
    sub, _ = raw_session(broker, version, "dur-q2in-sub")
    assert sub.subscribe([("dur/q2in", 2)]).rcs == [2]
    sub.disconnect()  # offline: the delivery waits in its queue
    pub, _ = raw_session(broker, version, "dur-q2in-pub")
    pub.publish("dur/q2in", b"once", qos=2, packet_id=5)
    rec = pub.expect(R.PUBREC)
    assert rec.packet_id == 5 and rec.rc < 0x80, rec
    broker.restart(how)  # before PUBREL
    pub.close()

    pub, ack = raw_session(broker, version, "dur-q2in-pub")
    assert ack.session_present is True
    pub.publish("dur/q2in", b"once", qos=2, packet_id=5, dup=True)
    rec = pub.expect(R.PUBREC)
    assert rec.packet_id == 5 and rec.rc < 0x80, rec
    pub.pubrel(5)
    comp = pub.expect(R.PUBCOMP)
    assert comp.packet_id == 5
    assert comp.rc == 0, "PUBCOMP 0x%02x: packet id 5 forgotten across %s" % (comp.rc, how)
    sub, ack = raw_session(broker, version, "dur-q2in-sub")
    assert ack.session_present is True
    got = drain_publishes(sub, expect=1)
    assert [g.payload for g in got] == [b"once"], "exactly once across %s: %r" % (how, got)
    sub.disconnect()
    pub.disconnect()


@pytest.mark.parametrize("how,durability", HOW_DUR)
def test_qos2_packet_id_free_again_after_pubcomp(broker_factory, version, how, durability):
    """PUBCOMP releases the packet id: once the publisher has it, a new PUBLISH with that id after
    a restart is a new message, not a duplicate to drop."""
    broker = broker_factory(config=config(durability))
    sub, _ = raw_session(broker, version, "dur-q2re-sub")
    assert sub.subscribe([("dur/q2re", 2)]).rcs == [2]
    sub.disconnect()
    pub, _ = raw_session(broker, version, "dur-q2re-pub")
    complete_qos2_publish(pub, "dur/q2re", b"first", 7)
    broker.restart(how)  # right after PUBCOMP
    pub.close()

    pub, ack = raw_session(broker, version, "dur-q2re-pub")
    assert ack.session_present is True
    complete_qos2_publish(pub, "dur/q2re", b"second", 7)
    sub, ack = raw_session(broker, version, "dur-q2re-sub")
    assert ack.session_present is True
    got = drain_publishes(sub, expect=2)
    assert [g.payload for g in got] == [b"first", b"second"], \
        "after %s: %r (a lost 'second' means the released packet id was still taken)" % (how,
                                                                                           got)
    sub.disconnect()
    pub.disconnect()


# ------------------------------------------------------------------ retained
@pytest.mark.parametrize("how", HOW)
def test_retained_messages_survive(broker_factory, version, how):
    broker = broker_factory()
    pub = Client(broker, version, "dur-ret-pub")
    pub.connect()
    pub.publish("dur/ret/a", b"A1", qos=1, retain=True)
    pub.publish("dur/ret/b", b"B", qos=2, retain=True)
    pub.publish("dur/ret/c", b"C", qos=1, retain=True)
    pub.publish("dur/ret/c", b"", qos=1, retain=True)     # cleared
    pub.publish("dur/ret/a", b"A2", qos=1, retain=True)   # replaced
    want = {"dur/ret/a": (b"A2", 1), "dur/ret/b": (b"B", 2)}
    if version == "5":
        pub.publish("dur/ret/p", b"P", qos=1, retain=True,
                    properties=props(PacketTypes.PUBLISH, ContentType="text/plain",
                                     UserProperty=[("k", "v")]))
        want["dur/ret/p"] = (b"P", 1)
    park(pub)
    broker.restart(how)
    abandon(pub)

    s = Client(broker, version, "dur-ret-sub")
    s.connect()
    s.subscribe("dur/ret/#", qos=2)
    got = {m.topic: m for m in s.expect_messages(len(want))}
    s.expect_no_message(0.5)
    assert {t: (m.payload, m.qos) for t, m in got.items()} == want
    assert all(m.retain for m in got.values())
    if version == "5":
        p = got["dur/ret/p"].properties
        assert getattr(p, "ContentType", None) == "text/plain", p
        assert getattr(p, "UserProperty", None) == [("k", "v")], p
    s.close()


@pytest.mark.parametrize("how", HOW)
def test_retained_message_expiry_counts_across_restart(broker_factory, how):
    """MQTT 5 only (Message Expiry Interval). The expiry counts from the publish, not the
    restart."""
    broker = broker_factory()
    pub = R.connected(broker.port, 5, "dur-rexp-pub")
    t0 = time.monotonic()
    pub.publish_qos("dur/rexp/short", b"s", qos=1, retain=True,
                    props={"MessageExpiryInterval": 3})
    pub.publish_qos("dur/rexp/long", b"l", qos=1, retain=True,
                    props={"MessageExpiryInterval": 600})
    sleep_until(t0 + 1.5)
    broker.restart(how)
    pub.close()
    s = R.connected(broker.port, 5, "dur-rexp-s1")
    s.subscribe([("dur/rexp/#", 1)])
    got = {p.topic: p for p in drain_publishes(s, expect=1, quiet=0.3)}
    elapsed = time.monotonic() - t0
    assert "dur/rexp/long" in got, got
    assert 590 <= got["dur/rexp/long"].props.get("MessageExpiryInterval") <= 600, got
    if elapsed < 2.8:
        assert "dur/rexp/short" in got, "retained message expired early after %s: %r" % (how, got)
        assert got["dur/rexp/short"].props.get("MessageExpiryInterval") <= 2, got
    s.disconnect()
    sleep_until(t0 + 3.7)
    s = R.connected(broker.port, 5, "dur-rexp-s2")
    s.subscribe([("dur/rexp/#", 1)])
    got = [p.topic for p in drain_publishes(s, expect=1, quiet=0.3)]
    assert got == ["dur/rexp/long"], \
        "expired at +3 s, still retained at +3.7 s after %s (counted from the restart?): %r" % (
            how, got)
    s.disconnect()


# ------------------------------------------------------------------ wills
@pytest.mark.parametrize("how", HOW)
def test_will_of_connected_client_published_after_restart(broker_factory, version, how):
    broker = broker_factory()
    sub, _ = raw_session(broker, version, "dur-will-sub")
    assert sub.subscribe([("dur/will/#", 1)]).rcs == [1]
    sub.disconnect()  # offline: the wills wait in its queue
    raw, _ = raw_session(broker, version, "dur-will-raw",
                         will={"topic": "dur/will/raw", "payload": b"raw-gone", "qos": 1,
                               "retain": True})
    pw, _ = paho_session(broker, version, "dur-will-paho",
                         will={"topic": "dur/will/paho", "payload": b"paho-gone", "qos": 1})
    park(pw)  # both connected when the broker goes down
    broker.restart(how)
    raw.close()
    abandon(pw)

    sub, ack = raw_session(broker, version, "dur-will-sub")
    assert ack.session_present is True
    got = sorted((p.topic, p.payload) for p in drain_publishes(sub, expect=2, quiet=1.0))
    assert got == [("dur/will/paho", b"paho-gone"), ("dur/will/raw", b"raw-gone")], \
        "wills of clients connected at the %s, each exactly once: %r" % (how, got)
    fresh = R.connected(broker.port, version, "dur-will-fresh")
    fresh.subscribe([("dur/will/#", 1)])
    got = [(p.topic, p.payload, p.retain) for p in drain_publishes(fresh, expect=1, quiet=0.5)]
    assert got == [("dur/will/raw", b"raw-gone", True)], got
    sub.disconnect()
    fresh.disconnect()


@pytest.mark.parametrize("how", HOW)
def test_delayed_wills_across_restart(broker_factory, how):
    """MQTT 5 only (Will Delay Interval). A pending delayed will is published when due, counted
    from the disconnect; a connected client's delayed will counts from the restart; a client that
    reconnects (clean start 0) before its delay ends cancels it."""
    broker = broker_factory()
    watch, _ = raw_session(broker, 5, "dur-dw-watch")
    assert watch.subscribe([("dur/dw/#", 1)]).rcs == [1]

    def will_client(name, delay):
        c, _ = raw_session(broker, 5, "dur-dw-" + name,
                           will={"topic": "dur/dw/" + name, "payload": name.encode(), "qos": 1,
                                 "props": {"WillDelayInterval": delay}})
        return c

    offline = will_client("offline", 3)
    online = will_client("online", 2)
    back = will_client("back", 3)
    offline.shutdown()
    back.shutdown()
    t_drop = time.monotonic()
    sleep_until(t_drop + 0.5)  # the broker has seen both connections go
    t_down = time.monotonic()
    broker.restart(how)
    t_ready = time.monotonic()
    online.close()
    watch.close()
    back, ack = raw_session(broker, 5, "dur-dw-back")
    assert ack.session_present is True
    assert time.monotonic() < t_drop + 2.5, "restart too slow for this test"
    watch, ack = raw_session(broker, 5, "dur-dw-watch")
    assert ack.session_present is True
    arrivals = {}
    while time.monotonic() < t_drop + 6.5:
        try:
            p = watch.recv(0.1)
        except R.Timeout:
            continue
        if p.type == R.PUBLISH:
            watch.puback(p.packet_id)
            assert p.topic not in arrivals, "will published twice: %r" % p
            arrivals[p.topic] = time.monotonic()
    assert "dur/dw/back" not in arrivals, "reconnect after the %s did not cancel the will" % how
    assert "dur/dw/offline" in arrivals, "pending delayed will lost across %s" % how
    at = arrivals["dur/dw/offline"] - t_drop
    assert 2.7 <= at <= 5.0, "will with delay 3 s published %.2f s after the drop" % at
    assert "dur/dw/online" in arrivals, "connected client's delayed will lost across %s" % how
    lo = arrivals["dur/dw/online"] - t_down
    hi = arrivals["dur/dw/online"] - t_ready
    assert lo >= 1.8 and hi <= 4.0, \
        "will with delay 2 s published %.2f s after the %s, %.2f s after ready" % (lo, how, hi)
    watch.disconnect()
    back.disconnect()


# ------------------------------------------------------------------ session expiry
@pytest.mark.parametrize("how", HOW)
def test_session_expiry_counts_from_disconnect_across_restart(broker_factory, version, how):
    broker = broker_factory(config={"mqtt": {"v3_session_expiry": 4}})
    names = ["early", "late"] + (["long"] if version == "5" else [])
    for n in names:
        c, _ = raw_session(broker, version, "dur-exp-" + n, expiry=60 if n == "long" else 4)
        c.subscribe([("dur/exp/" + n, 1)])
        c.disconnect()
    t0 = time.monotonic()
    sleep_until(t0 + 1.5)
    broker.restart(how)
    sleep_until(t0 + 3.0)
    c, ack = raw_session(broker, version, "dur-exp-early", expiry=4)
    assert time.monotonic() - t0 < 3.8, "restart too slow for this test"
    assert ack.session_present is True, "session gone before its expiry, after %s" % how
    c.disconnect()
    sleep_until(t0 + 5.0)
    c, ack = raw_session(broker, version, "dur-exp-late", expiry=4)
    assert ack.session_present is False, \
        "session with expiry 4 s still present 5 s after its disconnect (counted from the %s?)" \
        % how
    pub = R.connected(broker.port, version, "dur-exp-pub")
    pub.publish_qos("dur/exp/late", b"x", qos=1)
    assert not drain_publishes(c, quiet=0.5), "subscriptions of an expired session came back"
    c.disconnect()
    if version == "5":
        c, ack = raw_session(broker, version, "dur-exp-long", expiry=60)
        assert ack.session_present is True
        c.disconnect()
    pub.disconnect()


# ------------------------------------------------------------------ limits and policies
@pytest.mark.parametrize("how", HOW)
def test_queue_limit_drops_counted_and_limit_holds_after_restart(broker_factory, version, how):
    broker = broker_factory(config=config(max_queued_messages=5))
    c, _ = paho_session(broker, version, "dur-lim")
    c.subscribe("dur/lim", qos=1)
    c.disconnect()
    before = broker.metric(DROPPED, reason="queue_full")
    pub = R.connected(broker.port, version, "dur-lim-pub")
    for i in range(12):
        pub.publish_qos("dur/lim", b"%02d" % i, qos=1)
    dropped = wait_metric(broker, before + 7, DROPPED, reason="queue_full") - before
    assert dropped == 7, "12 publishes to a queue of 5: %r counted as dropped" % dropped
    broker.restart(how)
    pub.close()
    before = broker.metric(DROPPED, reason="queue_full")
    pub = R.connected(broker.port, version, "dur-lim-pub")
    for i in range(12, 15):
        pub.publish_qos("dur/lim", b"%02d" % i, qos=1)
    dropped = wait_metric(broker, before + 3, DROPPED, reason="queue_full") - before
    assert dropped == 3, "restored queue of 5 must count against the limit; dropped %r" % dropped
    c, ack = paho_session(broker, version, "dur-lim")
    assert ack["session_present"] is True
    got = [m.payload for m in c.expect_messages(5) + drain_paho(c)]
    assert got == [b"%02d" % i for i in range(5)], got
    c.close()
    pub.disconnect()


def test_a_restored_queue_over_the_limit_keeps_the_oldest_and_counts_the_rest(broker_factory,
                                                                              version):
    """A crash can leave more stored entries than max_queued_messages (a delivery to a full
    queue is stored with the publisher's ack and dropped by the session's worker a moment
    later). Made deterministic here: queue 8 with a limit of 10, restart with a limit of 5. The
    restored queue keeps the 5 oldest, the other 3 are counted as queue_full and deleted."""
    broker = broker_factory(config=config(max_queued_messages=10))
    c, _ = paho_session(broker, version, "dur-over")
    c.subscribe("dur/over", qos=1)
    c.disconnect()
    pub = R.connected(broker.port, version, "dur-over-pub")
    for i in range(8):
        pub.publish_qos("dur/over", b"%02d" % i, qos=1)
    pub.disconnect()
    broker.config = config(max_queued_messages=5)
    broker.restart("stop")
    assert broker.metric(DROPPED, reason="queue_full") == 3
    broker.restart("stop")  # the 3 are gone from disk too
    assert broker.metric(DROPPED, reason="queue_full") == 0
    c, ack = paho_session(broker, version, "dur-over")
    assert ack["session_present"] is True
    got = [m.payload for m in c.expect_messages(5) + drain_paho(c)]
    assert got == [b"%02d" % i for i in range(5)], got
    c.close()


@pytest.mark.parametrize("how", HOW)
def test_latest_only_restore_drops_an_older_entry_of_the_same_topic(broker_factory, version, how):
    """A crash can leave two queued entries on one latest-only topic (the newer one is stored with
    the publisher's ack, the older one's deletion by the session's worker a moment later). Made
    deterministic here: queue two messages while the filter is not latest-only, then restart with
    it. Only the newest is delivered, and the older one is deleted from disk for good."""
    broker = broker_factory(config=config())
    c, _ = paho_session(broker, version, "dur-latest-fix")
    c.subscribe("dur/tele/#", qos=1)
    c.disconnect()
    pub = R.connected(broker.port, version, "dur-latest-fix-pub")
    for p in (b"t1", b"t2", b"t3"):
        pub.publish_qos("dur/tele/a", p, qos=1)
    pub.publish_qos("dur/tele/b", b"u1", qos=1)
    pub.close()
    broker.config = config(latest_only_filters=["dur/tele/#"])
    broker.restart(how)
    before = broker.metric(DROPPED, reason="superseded")
    assert before == 2, "t1 and t2 are superseded by t3 at restore: %r" % before
    broker.restart("stop")  # the deletions reached the disk: nothing comes back
    c, ack = paho_session(broker, version, "dur-latest-fix")
    assert ack["session_present"] is True
    got = sorted((m.topic, m.payload) for m in c.expect_messages(2) + drain_paho(c))
    assert got == [("dur/tele/a", b"t3"), ("dur/tele/b", b"u1")], got
    c.close()


@pytest.mark.parametrize("how", HOW)
def test_latest_only_filters_keep_newest_per_topic(broker_factory, version, how):
    broker = broker_factory(config=config(latest_only_filters=["dur/tele/#"]))
    c, _ = paho_session(broker, version, "dur-latest")
    c.subscribe("dur/tele/#", qos=1)
    c.subscribe("dur/cmd/#", qos=1)
    c.disconnect()
    pub = R.connected(broker.port, version, "dur-latest-pub")
    for i in range(1, 6):
        pub.publish_qos("dur/tele/a", b"a%d" % i, qos=1)
        if i <= 3:
            pub.publish_qos("dur/tele/b", b"b%d" % i, qos=1)
            pub.publish_qos("dur/cmd/x", b"c%d" % i, qos=1)
    broker.restart(how)
    pub.close()
    # The restored queue still knows its latest-only entries: a6 replaces the restored a5.
    pub = R.connected(broker.port, version, "dur-latest-pub")
    pub.publish_qos("dur/tele/a", b"a6", qos=1)
    c, ack = paho_session(broker, version, "dur-latest")
    assert ack["session_present"] is True
    got = [(m.topic, m.payload) for m in c.expect_messages(5) + drain_paho(c)]
    per_topic = {}
    for t, p in got:
        per_topic.setdefault(t, []).append(p)
    assert per_topic == {"dur/tele/a": [b"a6"], "dur/tele/b": [b"b3"],
                         "dur/cmd/x": [b"c1", b"c2", b"c3"]}, got
    c.close()
    pub.disconnect()


# ------------------------------------------------------------------ refused data directories
def dir_state(path, skip_info_log=True):
    """{relative path: sha256} of every file under path. RocksDB's own info log (LOG, LOG.old.*)
    is skipped unless skip_info_log is False: opening a database rotates it."""
    out = {}
    for root, _, files in os.walk(path):
        for f in files:
            if skip_info_log and (f == "LOG" or f.startswith("LOG.old")):
                continue
            full = os.path.join(root, f)
            with open(full, "rb") as fh:
                out[os.path.relpath(full, path)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def files_named(path, pred):
    out = []
    for root, _, files in os.walk(path):
        out += [os.path.join(root, f) for f in files if pred(f)]
    return sorted(out, key=os.path.getsize, reverse=True)


def garble(path, at):
    with open(path, "r+b") as f:
        f.seek(at)
        chunk = f.read(32)
        f.seek(at)
        f.write(bytes(b ^ 0x5A for b in chunk))


def populate(broker, version="5"):
    """Persistent sessions, subscriptions, queued messages and retained messages."""
    for i in range(20):
        c, _ = raw_session(broker, version, "dur-pop-%d" % i)
        c.subscribe([("dur/pop/%d" % i, 1)])
        c.disconnect()
    pub = R.connected(broker.port, version, "dur-pop-pub")
    for i in range(20):
        pub.publish_qos("dur/pop/%d" % i, b"queued-%d" % i * 20, qos=1, retain=True)
    pub.disconnect()


def expect_refused(tmp_path, data_dir, cfg, what):
    b = BrokerProcess(tmp_path, cfg, name="reopen")
    b.data_dir = data_dir
    try:
        with pytest.raises(RuntimeError):
            b.start()
            pytest.fail("broker served a %s data directory:\n%s" % (what, b.log_tail()))
    finally:
        b.stop()
    assert b.proc.returncode not in (0, None), b.log_tail()
    log = b.log_tail()
    assert data_dir in log, "refusal does not name the data directory:\n%s" % log
    return log


@pytest.mark.parametrize("damage", ["current", "manifest", "wal", "sst"])
def test_corrupt_data_dir_refused_and_kept(broker_factory, tmp_path, damage):
    broker = broker_factory(name="orig")
    populate(broker)
    if damage == "wal":
        broker.kill()  # the data is in the write-ahead log only
    elif damage == "sst":
        broker.restart("kill")  # recovery writes the log into table files
        assert broker.stop() == 0, broker.log_tail()
    else:
        assert broker.stop() == 0, broker.log_tail()
    data = broker.data_dir
    if damage == "current":
        target = files_named(data, lambda f: f == "CURRENT")
        assert target, "no CURRENT file in %s: %s" % (data, sorted(dir_state(data)))
        with open(target[0], "wb") as f:
            f.write(b"\x00garbage\xff")
    else:
        pred = {"manifest": lambda f: f.startswith("MANIFEST-"),
                "wal": lambda f: f.endswith(".log"),
                "sst": lambda f: f.endswith(".sst")}[damage]
        target = [t for t in files_named(data, pred) if os.path.getsize(t) >= 256]
        if damage == "sst" and not target:
            pytest.skip("no table file after a recovery: %s" % sorted(dir_state(data)))
        assert target, "no %s file in %s: %s" % (damage, data, sorted(dir_state(data)))
        garble(target[0], os.path.getsize(target[0]) // 2)
    before = dir_state(data)
    expect_refused(tmp_path, data, {}, "corrupt (%s)" % damage)
    assert dir_state(data) == before, "data directory changed by the refused start"


def test_directory_without_database_refused_and_kept(tmp_path):
    data = str(tmp_path / "foreign")
    os.makedirs(data)
    with open(os.path.join(data, "notes.txt"), "wb") as f:
        f.write(os.urandom(1000))
    before = dir_state(data, skip_info_log=False)
    expect_refused(tmp_path, data, {}, "foreign")
    assert dir_state(data, skip_info_log=False) == before, "foreign directory changed"


def test_other_partition_count_refused_and_kept(broker_factory, tmp_path):
    broker = broker_factory(config={"storage": {"partitions": 16}}, name="orig")
    populate(broker)
    assert broker.stop() == 0, broker.log_tail()
    before = dir_state(broker.data_dir)
    expect_refused(tmp_path, broker.data_dir, {"storage": {"partitions": 32}},
                   "16-partition (started with 32)")
    assert dir_state(broker.data_dir) == before
    broker.start()  # the right partition count still opens it, data intact
    c, ack = raw_session(broker, "5", "dur-pop-3")
    assert ack.session_present is True
    got = drain_publishes(c, expect=1)
    assert [g.payload for g in got] == [b"queued-3" * 20], got
    c.disconnect()
