"""Partition hand-off, copy-then-flip (real etcd, real shardmq processes, raw MQTT clients).

When a store node joins, or a store node drains (SIGTERM, `shardmq ctl drain`), every partition
that changes leader takes its sessions along: the old leader stops serving them, copies their
subscriptions, queues, in-flight messages and QoS 2 state to the new leader, and only then does
the controller flip the partition. Shown here under load, with a message id in every payload:
no acknowledged QoS 1 message is lost, and no QoS 2 message is delivered twice, for sessions
that were offline during the move and for clients that were connected (disconnected with v5
0x9C, they reconnect and find their session)."""
import collections
import signal
import threading
import time

import pytest

from conftest import ctl_status
from partitions import partition
from rawmqtt import PUBACK, PUBLISH, PUBREL, RawClient, publish_packet
from test_cluster import nodes_by_id, placed_on, wait_until
from test_cluster_sessions import LEASE_TTL, all_applied

SESSION = {"SessionExpiryInterval": 600}
Q1, Q2 = "ho/q1", "ho/q2"
OFFLINE = ["offline-%d" % i for i in range(16)]
ONLINE = ["online-%d" % i for i in range(4)]
MAX_MESSAGES = 300  # per publisher: below the default queue limit (1,000) of every session


def settled(status, stores, everyone):
    return (placed_on(status, stores) and not status["moves"] and
            all_applied(status, everyone) and status)


def connect_retrying(port, cid, deadline_s=20):
    """A persistent v5 session through `port`; connects that land while the session's partition
    is moving are turned away (CONNACK 0x88 or a closed socket): try again."""
    deadline = time.time() + deadline_s
    while True:
        c = RawClient(port, 5, timeout=5)
        try:
            ack = c.connect(cid, clean=False, props=SESSION)
            if ack.rc == 0:
                return c, ack
        except AssertionError:
            pass
        c.close()
        assert time.time() < deadline, "no session for %s within %ds" % (cid, deadline_s)
        time.sleep(0.2)


def take(c, p, got, awaiting_rel):
    """Handles one packet from the broker as a QoS 1/2 receiver does: acknowledges it, and
    records a PUBLISH's id in got[topic] unless it is a resend (same packet id, PUBREL not yet
    seen) of a QoS 2 message already taken."""
    if p.type == PUBLISH:
        if p.qos == 1:
            c.puback(p.packet_id)
        elif p.qos == 2:
            c.pubrec(p.packet_id)
            if p.packet_id in awaiting_rel:
                return
            awaiting_rel.add(p.packet_id)
        got[p.topic].append(int(p.payload))
    elif p.type == PUBREL:
        awaiting_rel.discard(p.packet_id)
        c.pubcomp(p.packet_id)


class Publisher(threading.Thread):
    """Publishes "<i>" to `topic` at `qos` until stopped (or MAX_MESSAGES), reconnecting when
    its own session's partition moves. `acked`: ids whose PUBACK/PUBCOMP arrived. A QoS 1 id
    whose acknowledgement was lost is sent again (duplicates are allowed); a QoS 2 id is never
    sent twice (`uncertain`: the flow broke off, so it may or may not have been published)."""

    def __init__(self, port, cid, topic, qos):
        super().__init__(daemon=True)
        self.port, self.cid, self.topic, self.qos = port, cid, topic, qos
        self.acked, self.uncertain = [], []
        self.stop = threading.Event()
        self.reconnects = 0
        self.error = None

    def run(self):
        try:
            c, _ = connect_retrying(self.port, self.cid)
            i = 0
            while not self.stop.is_set() and i < MAX_MESSAGES:
                try:
                    c.publish_qos(self.topic, b"%d" % i, self.qos, timeout=5)
                    self.acked.append(i)
                    i += 1
                except AssertionError:  # disconnected (0x9C), closed or timed out
                    if self.qos == 2:
                        self.uncertain.append(i)
                        i += 1
                    c.close()
                    self.reconnects += 1
                    c, _ = connect_retrying(self.port, self.cid)
                time.sleep(0.002)
            c.disconnect()
        except Exception as e:  # noqa: BLE001 (reported by the test)
            self.error = e


class Subscriber(threading.Thread):
    """A connected persistent session that acknowledges everything and reconnects whenever it
    is disconnected, until stopped; `got[topic]` lists the payloads in arrival order. Like any
    QoS 2 receiver it keeps the packet ids it has PUBREC'd until their PUBREL, across
    reconnects, and does not take a PUBLISH again under such an id (a resend with DUP)."""

    def __init__(self, port, cid):
        super().__init__(daemon=True)
        self.port, self.cid = port, cid
        self.got = {Q1: [], Q2: []}
        self.awaiting_rel = set()
        self.stop = threading.Event()
        self.reconnects = 0
        self.sessions_present = []
        self.error = None
        c, _ = connect_retrying(port, cid)
        c.subscribe([(Q1, 1), (Q2, 2)])
        self.c = c

    def run(self):
        try:
            c = self.c
            while not self.stop.is_set():
                try:
                    take(c, c.recv(0.2), self.got, self.awaiting_rel)
                except AssertionError as e:  # nothing yet, or disconnected (also while acking)
                    if "no packet" in str(e):
                        continue
                    c.close()
                    self.reconnects += 1
                    c, ack = connect_retrying(self.port, self.cid)
                    self.sessions_present.append(ack.session_present)
            c.disconnect()
        except Exception as e:  # noqa: BLE001 (reported by the test)
            self.error = e


def drain_queue(port, cid):
    """Reconnects offline session `cid`; returns (session present, {topic: [ids]}) with every
    queued message, acknowledged as it comes."""
    c, ack = connect_retrying(port, cid)
    got = collections.defaultdict(list)
    awaiting_rel = set()
    while True:
        p = c.try_recv(0.5)
        if p is None:
            break
        take(c, p, got, awaiting_rel)
    c.disconnect()
    return ack.session_present, got


def check(name, got, q1, q2):
    """No acknowledged QoS 1 id missing; every acknowledged QoS 2 id exactly once, the uncertain
    ones at most once, nothing else."""
    missing = sorted(set(q1.acked) - set(got[Q1]))
    assert not missing, "%s lost QoS 1 ids %s" % (name, missing[:20])
    counts = {}
    for i in got[Q2]:
        counts[i] = counts.get(i, 0) + 1
    twice = sorted(i for i, n in counts.items() if n > 1)
    assert not twice, "%s got QoS 2 ids twice: %s" % (name, twice[:20])
    missing2 = sorted(set(q2.acked) - set(counts))
    assert not missing2, "%s lost QoS 2 ids %s" % (name, missing2[:20])
    unexpected = sorted(set(counts) - set(q2.acked) - set(q2.uncertain))
    assert not unexpected, "%s got QoS 2 ids never published: %s" % (name, unexpected[:20])
    # Order per publisher per topic (QoS 1 may repeat an id after a resend).
    firsts = [i for n, i in enumerate(got[Q1]) if i not in got[Q1][:n]]
    bad = next((n for n in range(1, len(firsts)) if firsts[n] < firsts[n - 1]), None)
    assert bad is None, "%s: QoS 1 out of order at %d: %s (publisher reconnects: %d)" % (
        name, bad, got[Q1][max(0, bad - 5):bad + 5], q1.reconnects)


def run_move(etcd, cluster_node, move, stores_after, everyone_after):
    """Two store nodes and a front-end; sessions offline and online, two publishers; `move()`
    changes the stores under load. Returns the nodes and the status after the move."""
    s1 = cluster_node("s1", role="store", lease_ttl=LEASE_TTL)
    s2 = cluster_node("s2", role="store", lease_ttl=LEASE_TTL)
    f1 = cluster_node("f1", role="frontend", lease_ttl=LEASE_TTL)
    assert wait_until(lambda: settled(ctl_status(etcd), ["s1", "s2"], ["s1", "s2", "f1"]))
    for cid in OFFLINE:
        c, ack = connect_retrying(f1.port, cid)
        c.subscribe([(Q1, 1), (Q2, 2)])
        c.disconnect()
    subs = [Subscriber(f1.port, cid) for cid in ONLINE]
    for s in subs:
        s.start()
    q1 = Publisher(f1.port, "pub-q1", Q1, 1)
    q2 = Publisher(f1.port, "pub-q2", Q2, 2)
    q1.start()
    q2.start()
    assert wait_until(lambda: len(q1.acked) >= 30 and len(q2.acked) >= 30, timeout=20)
    before = ctl_status(etcd)
    nodes = move(s1, s2, f1)
    status = wait_until(lambda: settled(ctl_status(etcd), stores_after, everyone_after),
                        timeout=60)
    assert status, ctl_status(etcd)
    time.sleep(0.5)  # some load after the flip too
    for p in (q1, q2):
        p.stop.set()
        p.join(30)
        assert p.error is None, p.error
    assert len(q1.acked) > 30 and len(q2.acked) > 30
    # Every session reached through the front-end, moved or not.
    leaders_before, leaders_after = before["leaders"], status["leaders"]
    moved = [cid for cid in OFFLINE + ONLINE
             if leaders_before[partition(cid, 256)] != leaders_after[partition(cid, 256)]]
    assert moved, "no session's partition moved: the test shows nothing"
    time.sleep(1.0)  # the online subscribers catch up
    for s in subs:
        s.stop.set()
        s.join(30)
        assert s.error is None, s.error
        check(s.cid, s.got, q1, q2)
        assert all(s.sessions_present), (s.cid, s.sessions_present)
    for cid in OFFLINE:
        present, got = drain_queue(f1.port, cid)
        assert present, "%s: session not present after the move" % cid
        check(cid, got, q1, q2)
    return nodes, status, moved, subs


def test_a_joining_store_takes_its_sessions_over_under_load(etcd, cluster_node):
    def join(s1, s2, f1):
        return cluster_node("s3", role="store", lease_ttl=LEASE_TTL)

    s3, status, moved, subs = run_move(etcd, cluster_node, join, ["s1", "s2", "s3"],
                                       ["s1", "s2", "s3", "f1"])
    led = nodes_by_id(status)["s3"]["partitions_led"]
    assert 256 / 3 * 0.5 < led < 256 / 3 * 1.5
    assert s3.metric("shardmq_cluster_handoffs_total", direction="in") == len(
        [p for p in range(256) if status["leaders"][p] == "s3"])
    assert s3.metric("shardmq_cluster_handoff_sessions_total", direction="in") > 0
    moved_online = [s for s in subs if s.cid in moved]
    for s in moved_online:  # told to go, came back, found its session
        assert s.reconnects >= 1, s.cid


def test_sigterm_on_a_store_node_hands_its_sessions_over_before_it_exits(etcd, cluster_node):
    def drain(s1, s2, f1):
        assert s2.stop() == 0  # SIGTERM: drain, then exit
        assert "drained: this node leads no partition" in s2.log_tail(400)
        return s1

    s1, status, moved, _ = run_move(etcd, cluster_node, drain, ["s1"], ["s1", "f1"])
    assert nodes_by_id(status)["s1"]["partitions_led"] == 256
    assert s1.metric("shardmq_cluster_handoffs_total", direction="in") > 0
    assert s1.metric("shardmq_cluster_handoff_sessions_total", direction="in") > 0


def test_ctl_drain_moves_a_persistent_session_with_its_queue_and_inflight_state(
        etcd, cluster_node):
    """One session in detail: a QoS 1 message in flight (sent, not acknowledged), a queued QoS 2
    message, and a QoS 2 message the client sent whose PUBREL has not come yet."""
    import subprocess
    from conftest import SHARDMQ
    from rawmqtt import PUBCOMP, PUBREC
    s1 = cluster_node("s1", role="store", lease_ttl=LEASE_TTL)
    cluster_node("s2", role="store", lease_ttl=LEASE_TTL)
    f1 = cluster_node("f1", role="frontend", lease_ttl=LEASE_TTL)
    status = wait_until(lambda: settled(ctl_status(etcd), ["s1", "s2"], ["s1", "s2", "f1"]))
    cid = next("detail-%d" % i for i in range(1000)
               if status["leaders"][partition("detail-%d" % i, 256)] == "s2")
    c, _ = connect_retrying(f1.port, cid)
    c.subscribe([("d/1", 1), ("d/2", 2)])
    pub, _ = connect_retrying(s1.port, "detail-pub")
    pub.publish_qos("d/1", b"inflight", 1)
    first = c.expect(PUBLISH)  # not acknowledged: stays in flight
    assert first.payload == b"inflight"
    c.publish("d/in", b"x", qos=2, packet_id=77)  # the client's own QoS 2, PUBREL not sent
    assert c.expect(PUBREC).packet_id == 77
    c.shutdown()  # gone without DISCONNECT
    pub.publish_qos("d/2", b"queued", 2)
    out = subprocess.run([SHARDMQ, "ctl", "drain", "s2", "--etcd", etcd.endpoint, "--wait"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    status = wait_until(lambda: settled(ctl_status(etcd), ["s1"], ["s1", "s2", "f1"]))
    assert status and status["leaders"][partition(cid, 256)] == "s1"
    again, ack = connect_retrying(f1.port, cid)
    assert ack.session_present
    # The in-flight message again, with DUP and its packet id, then the queued one.
    p = again.expect(PUBLISH)
    assert (p.payload, p.dup, p.packet_id) == (b"inflight", True, first.packet_id)
    again.puback(p.packet_id)
    q = again.expect(PUBLISH)
    assert (q.payload, q.qos) == (b"queued", 2)
    again.pubrec(q.packet_id)
    assert again.expect(PUBREL).packet_id == q.packet_id
    again.pubcomp(q.packet_id)
    # The client's QoS 2 state came along: its PUBREL is answered, and the packet id is still
    # taken (a resend with DUP is not published again).
    again.pubrel(77)
    comp = again.expect(PUBCOMP)
    assert (comp.packet_id, comp.rc) == (77, 0)  # not 0x92: the id was known
    again.disconnect()
    pub.disconnect()


def test_messages_for_a_dead_store_nodes_sessions_wait_for_it_at_the_owner(etcd, cluster_node):
    """Item 7 of issue 5: a store node is killed; what is published meanwhile for its
    persistent sessions (to topics other nodes own, so the publishes succeed) is held by the
    topic's owner and delivered when the node is back with its data directory."""
    s1 = cluster_node("s1", role="store", lease_ttl=LEASE_TTL)
    s2 = cluster_node("s2", role="store", lease_ttl=LEASE_TTL)
    f1 = cluster_node("f1", role="frontend", lease_ttl=LEASE_TTL)
    status = wait_until(lambda: settled(ctl_status(etcd), ["s1", "s2"], ["s1", "s2", "f1"]))
    leaders = status["leaders"]

    def led_by(node, prefix):
        return next("%s%d" % (prefix, i) for i in range(1000)
                    if leaders[partition("%s%d" % (prefix, i), 256)] == node)

    sub_id, topic, pub_id = led_by("s2", "waiting-"), led_by("s1", "held/"), led_by("s1", "pub-")
    sub, _ = connect_retrying(f1.port, sub_id)
    sub.subscribe([(topic, 1), ("held-retained/#", 1)])
    sub.disconnect()  # offline: its session on s2 queues
    s2.kill()
    assert wait_until(lambda: not nodes_by_id(ctl_status(etcd))["s2"]["alive"], timeout=15)
    pub, _ = connect_retrying(s1.port, pub_id)
    for i in range(20):
        pub.publish_qos(topic, b"%d" % i, 1)  # acknowledged: s1 owns the topic
    retained = led_by("s1", "held-retained/")
    pub.publish_qos(retained, b"99", 1, retain=True)
    assert s1.metric("shardmq_cluster_held_for_down_nodes") == 21
    pub.disconnect()
    s2.start()  # same data directory
    assert wait_until(lambda: settled(ctl_status(etcd), ["s1", "s2"], ["s1", "s2", "f1"]),
                      timeout=30)
    assert wait_until(lambda: s1.metric("shardmq_cluster_held_for_down_nodes") == 0)
    present, got = drain_queue(f1.port, sub_id)
    assert present
    assert got[topic] == list(range(20)), dict(got)
    assert got[retained] == [99], dict(got)




def persistent_sessions_on_a_lone_store(etcd, a, prefix, n):
    """Once `a` leads every partition: n offline persistent sessions on it; their ids."""
    assert wait_until(lambda: settled(ctl_status(etcd), ["a"], ["a"]))
    ids = ["%s-%d" % (prefix, i) for i in range(n)]
    for cid in ids:
        c = RawClient(a.port, 5)
        assert c.connect(cid, clean=False, props=SESSION).rc == 0
        c.disconnect()
    return ids


@pytest.mark.parametrize("outcome", ["flipped", "cancelled"])
def test_a_direct_connect_to_the_old_leader_waits_for_the_hand_off(etcd, cluster_node, outcome):
    """A client that connects straight to the old leader while its session's partition is
    being handed off is not turned away: the connect waits until the hand-off ends, then is
    relayed to the new leader (flipped) or served where it was (cancelled: the new leader was
    lost), and finds its session; a publish sent right behind the CONNECT is not lost."""
    a = cluster_node("a", role="store", lease_ttl=5, config={"log_level": "debug"})
    ids = persistent_sessions_on_a_lone_store(etcd, a, "waiter", 64)
    # b joins and is stopped at once: the hand-offs to it cannot finish, so a keeps the moving
    # partitions frozen.
    b = cluster_node("b", role="store", lease_ttl=4 if outcome == "cancelled" else 6)
    b.proc.send_signal(signal.SIGSTOP)
    try:
        assert wait_until(lambda: a.metric("shardmq_cluster_handoffs_in_progress") > 0,
                          timeout=10)
        time.sleep(0.3)
        status = ctl_status(etcd)
        moving = {m["partition"] for m in status["moves"] if m["from"] == "a"}
        cid = next((c for c in ids if partition(c, status["partitions"]) in moving), None)
        assert cid, status["moves"]
        result = {}

        def connect():
            c = RawClient(a.port, 5, timeout=20)
            c.connect(cid, clean=False, props=SESSION, expect_connack=False)
            c.send(publish_packet("behind/connect", b"x", qos=1, packet_id=7))
            result["connack"] = c.recv(20)
            result["after"] = c.recv(10)
            c.close()

        waiter = threading.Thread(target=connect, daemon=True)
        waiter.start()
        time.sleep(1.0)
        assert "connack" not in result, result  # waiting, not turned away
        if outcome == "cancelled":
            # b's lease runs out: the controller drops the moves, a keeps the partitions and
            # serves the connect (before b is back: then it would join again).
            assert wait_until(lambda: not ctl_status(etcd)["moves"], timeout=10)
            assert wait_until(lambda: "after" in result, timeout=10), result
    finally:
        b.proc.send_signal(signal.SIGCONT)
    waiter.join(20)
    assert not waiter.is_alive()
    ack = result["connack"]
    assert ack.rc == 0 and ack.session_present, ack
    assert result["after"].type == PUBACK and result["after"].packet_id == 7
    # Relayed to b (an open b refuses until it has the flip is opened again), or served by a.
    opens = a.metric("shardmq_cluster_relays_out_total")
    assert opens >= 1 if outcome == "flipped" else opens == 0, opens


class Churner(threading.Thread):
    """Connects `cids` to `port` in turn, over and over, each time subscribing to one more
    topic, sub/<cid>/<n>; `acked[cid]`: the highest n whose SUBACK granted it. Connects turned
    away while a session's partition moves (CONNACK 0x88, a closed socket) are tried again."""

    def __init__(self, port, cids):
        super().__init__(daemon=True)
        self.port, self.cids = port, cids
        self.acked = {c: -1 for c in cids}
        self.stop = threading.Event()
        self.rounds = 0
        self.refused = 0
        self.error = None

    def run(self):
        try:
            deadline = time.time() + 60
            while not self.stop.is_set() and time.time() < deadline and self.rounds < 400:
                self.rounds += 1
                for cid in self.cids:
                    n = self.acked[cid] + 1
                    c = RawClient(self.port, 5, timeout=15)
                    try:
                        ack = c.connect(cid, clean=False, props=SESSION)
                        if ack.rc != 0:
                            self.refused += 1
                            continue
                        assert ack.session_present, "%s lost its session" % cid
                        if c.subscribe([("sub/%s/%d" % (cid, n), 1)]).rcs == [1]:
                            self.acked[cid] = n
                        c.disconnect()
                    except AssertionError as e:
                        if "lost its session" in str(e):
                            raise
                        self.refused += 1  # closed by the broker (its partition moved)
                    finally:
                        c.close()
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = e


def test_sessions_connecting_in_a_loop_through_a_join_keep_every_granted_subscription(
        etcd, cluster_node):
    """Clients that keep connecting straight to the old leader and subscribing while their
    sessions' partitions move: every session stays present, and its last granted subscription
    is there afterwards wherever it lives (a connect that raced a freeze would have changed a
    copy the new leader never gets)."""
    a = cluster_node("a", role="store", lease_ttl=5)
    ids = persistent_sessions_on_a_lone_store(etcd, a, "churn", 24)
    churners = [Churner(a.port, ids[i::4]) for i in range(4)]
    for t in churners:
        t.start()
    time.sleep(0.5)
    b = cluster_node("b", role="store", lease_ttl=5)
    assert wait_until(lambda: settled(ctl_status(etcd), ["a", "b"], ["a", "b"]), timeout=30)
    time.sleep(0.5)
    for t in churners:
        t.stop.set()
    for t in churners:
        t.join(30)
        assert not t.is_alive()
        assert t.error is None, t.error
    acked = {}
    for t in churners:
        acked.update(t.acked)
    assert all(n >= 1 for n in acked.values()), acked
    status = ctl_status(etcd)
    assert any(partition(c, status["partitions"]) in
               {p for p, leader in enumerate(status["leaders"]) if leader == "b"} for c in ids)
    # Every session's last granted subscription works, on whichever node now holds it.
    pub = RawClient(b.port, 5)
    assert pub.connect("churn-checker").rc == 0
    for cid in ids:
        c = RawClient(a.port, 5, timeout=10)
        ack = c.connect(cid, clean=False, props=SESSION)
        assert ack.rc == 0 and ack.session_present, (cid, ack)
        topic = "sub/%s/%d" % (cid, acked[cid])
        assert pub.publish_qos(topic, b"hello", qos=1).rc == 0
        got = c.expect(PUBLISH, timeout=10)
        assert got.topic == topic, (cid, got)
        c.puback(got.packet_id)
        c.disconnect()
