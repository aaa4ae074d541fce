"""Sessions in a cluster (real etcd, real shardmq processes, paho and raw clients).

A session lives on S = leader(partition(client id)); a front-end relays its client's MQTT stream
to S. Shown here: persistent sessions that reconnect through another front-end (session present,
queue, in-flight messages with DUP, incoming QoS 2 state), session takeover across front-ends,
and what happens when a front-end is killed: every will of its clients once (after its Will
Delay, unless the client came back first), within the lease TTL + 2 s, and persistent sessions
that keep their queues."""
import time

import pytest

from conftest import Client, ctl_status, props
from paho.mqtt.packettypes import PacketTypes
from rawmqtt import PUBCOMP, PUBLISH, PUBREC, PUBREL, RawClient
from test_cluster import nodes_by_id, placed_on, wait_until

LEASE_TTL = 2


def all_applied(status, ids):
    nodes = nodes_by_id(status)
    return all(i in nodes and nodes[i]["applied_revision"] == status["map_revision"] for i in ids)


@pytest.fixture
def fleet(etcd, cluster_node):
    """Two store nodes and two front-ends (front-ends hold no partitions: every session they
    serve lives on a store node)."""
    s1 = cluster_node("s1", role="store", lease_ttl=LEASE_TTL)
    s2 = cluster_node("s2", role="store", lease_ttl=LEASE_TTL)
    f1 = cluster_node("f1", role="frontend", lease_ttl=LEASE_TTL)
    f2 = cluster_node("f2", role="frontend", lease_ttl=LEASE_TTL)
    assert wait_until(lambda: placed_on(ctl_status(etcd), ["s1", "s2"]))
    assert wait_until(lambda: all_applied(ctl_status(etcd), ["s1", "s2", "f1", "f2"]))
    opened = []

    def client(node, version, cid=""):
        c = Client(None, version, cid, port=node.port)
        opened.append(c)
        return c

    yield (s1, s2, f1, f2), client
    for c in opened:
        c.close()


def persistent_connect(c, version):
    if version == "5":
        return c.connect(clean_start=False,
                         properties=props(PacketTypes.CONNECT, SessionExpiryInterval=300))
    return c.connect()


def test_a_persistent_session_reconnects_through_another_frontend(fleet, version):
    (_, _, f1, f2), client = fleet
    sub = client(f1, version, "roamer-" + version) if version == "5" else \
        Client(None, version, "roamer-" + version, clean_session=False, port=f1.port)
    ack = persistent_connect(sub, version)
    assert not ack["session_present"]
    sub.subscribe("roam/q", qos=1)
    sub.disconnect()
    pub = client(f2, version, "roam-pub")
    pub.connect()
    for i in range(20):
        pub.publish("roam/q", b"%d" % i, qos=1)
    # Back through the other front-end: the session, its subscription and its queue are there.
    back = Client(None, version, "roamer-" + version, clean_session=False, port=f2.port)
    try:
        ack = persistent_connect(back, version)
        assert ack["session_present"]
        got = back.expect_messages(20, timeout=15)
        assert [int(m.payload) for m in got] == list(range(20))
        pub.publish("roam/q", b"live", qos=1)
        assert back.expect_message().payload == b"live"
    finally:
        back.close()
        sub.close()


@pytest.mark.parametrize("version", [4, 5])
def test_inflight_and_qos2_state_survive_a_move_to_another_frontend(fleet, version):
    (_, _, f1, f2), _ = fleet
    cid = "q2state-%d" % version
    session = {"props": {"SessionExpiryInterval": 300}} if version == 5 else {}
    watcher = RawClient(f2.port, version)
    assert watcher.connect("q2watch-%d" % version).rc == 0
    watcher.subscribe([("q2/in", 2)])

    sub = RawClient(f1.port, version)
    assert sub.connect(cid, clean=False, **session).rc == 0
    sub.subscribe([("q2/out", 2)])
    pub = RawClient(f2.port, version)
    assert pub.connect("q2pub-%d" % version).rc == 0
    pub.publish_qos("q2/out", b"m1", qos=2)
    first = sub.expect(PUBLISH)
    assert first.qos == 2 and not first.dup
    # An incoming QoS 2 publish, answered with PUBREC, then the connection is lost before PUBREL.
    sub.publish("q2/in", b"once", qos=2, packet_id=77)
    assert sub.expect(PUBREC).packet_id == 77
    sub.shutdown()

    again = RawClient(f2.port, version)  # the other front-end
    ack = again.connect(cid, clean=False, **session)
    assert ack.rc == 0 and ack.session_present
    resent = again.expect(PUBLISH)  # the in-flight message, resent with DUP
    assert (resent.payload, resent.packet_id, resent.dup) == (b"m1", first.packet_id, True)
    again.pubrec(resent.packet_id)
    assert again.expect(PUBREL).packet_id == resent.packet_id
    again.pubcomp(resent.packet_id)
    # The client resends its QoS 2 publish (DUP); the session still knows packet id 77.
    again.publish("q2/in", b"once", qos=2, dup=True, packet_id=77)
    assert again.expect(PUBREC).packet_id == 77
    again.pubrel(77)
    assert again.expect(PUBCOMP).packet_id == 77
    got = watcher.receive_publish_qos()
    assert got.payload == b"once"
    assert [p for p in watcher.recv_all(1.0) if p.type == PUBLISH] == []  # exactly once
    for c in (again, pub, watcher):
        c.disconnect()


def test_session_takeover_across_frontends(fleet):
    (_, _, f1, f2), _ = fleet
    old = RawClient(f1.port, 5)
    assert old.connect("taken", clean=False, props={"SessionExpiryInterval": 300}).rc == 0
    old.subscribe([("take/t", 1)])
    new = RawClient(f2.port, 5)
    ack = new.connect("taken", clean=False, props={"SessionExpiryInterval": 300})
    assert ack.rc == 0 and ack.session_present
    old.expect_disconnect(rc=0x8E)  # Session taken over
    assert old.wait_closed(5)
    pub = RawClient(f1.port, 5)
    assert pub.connect("take-pub").rc == 0
    pub.publish_qos("take/t", b"to-new", qos=1)
    assert new.receive_publish_qos().payload == b"to-new"
    for c in (new, pub):
        c.disconnect()


def test_takeover_of_a_311_client_across_frontends(fleet):
    (_, _, f1, f2), _ = fleet
    old = RawClient(f1.port, 4)
    assert old.connect("taken311", clean=True).rc == 0
    new = RawClient(f2.port, 4)
    assert new.connect("taken311", clean=True).rc == 0
    assert old.wait_closed(5)  # 3.1.1: the old connection is closed
    new.disconnect()


def test_killing_a_frontend_publishes_each_will_once_and_keeps_the_sessions(fleet):
    (_, _, f1, f2), client = fleet
    watcher = RawClient(f2.port, 5)
    assert watcher.connect("will-watcher").rc == 0
    watcher.subscribe([("wills/#", 1)])

    on_f1 = []
    for i in range(10):
        v = 4 if i % 2 else 5
        c = RawClient(f1.port, v)
        assert c.connect("dying-%d" % i, will={"topic": "wills/%d" % i, "payload": b"w%d" % i,
                                               "qos": 1}).rc == 0
        on_f1.append(c)
    # Will Delay 2 s, not back: published after the delay. Will Delay 30 s, back through f2
    # within it: never published.
    delayed = RawClient(f1.port, 5)
    assert delayed.connect("delayed", clean=False,
                           props={"SessionExpiryInterval": 300},
                           will={"topic": "wills/delayed", "payload": b"late", "qos": 1,
                                 "props": {"WillDelayInterval": 2}}).rc == 0
    returning = RawClient(f1.port, 5)
    assert returning.connect("returning", clean=False, props={"SessionExpiryInterval": 300},
                             will={"topic": "wills/returning", "payload": b"never", "qos": 1,
                                   "props": {"WillDelayInterval": 30}}).rc == 0
    # Will Delay 4 s, back through f2 after its session's node saw it lost (its will timer is
    # running then): never published either.
    late = RawClient(f1.port, 5)
    assert late.connect("late", clean=False, props={"SessionExpiryInterval": 300},
                        will={"topic": "wills/late", "payload": b"never", "qos": 1,
                              "props": {"WillDelayInterval": 4}}).rc == 0
    # A persistent subscriber on f1 whose queue must survive.
    keeper = RawClient(f1.port, 4)
    assert keeper.connect("keeper", clean=False).rc == 0
    keeper.subscribe([("keep/q", 1)])

    f1.kill()
    killed_at = time.time()
    back = RawClient(f2.port, 5)
    ack = back.connect("returning", clean=False, props={"SessionExpiryInterval": 300})
    assert ack.rc == 0 and ack.session_present

    pub = RawClient(f2.port, 4)
    assert pub.connect("keep-pub").rc == 0
    for i in range(5):
        pub.publish_qos("keep/q", b"k%d" % i, qos=1)

    wills = {}
    late_back = None
    deadline = killed_at + LEASE_TTL + 2 + 2 + 3  # + the 2 s delay, + margin for the last check
    while time.time() < deadline:
        try:
            p = watcher.recv(0.2)
        except Exception:
            continue
        if p.type == PUBLISH:
            watcher.puback(p.packet_id)
            wills.setdefault(p.topic, []).append((p.payload, time.time() - killed_at))
            if late_back is None:  # the first wills are out: f1's clients count as lost now
                late_back = RawClient(f2.port, 5)
                ack = late_back.connect("late", clean=False,
                                        props={"SessionExpiryInterval": 300})
                assert ack.rc == 0 and ack.session_present
    expected = {"wills/%d" % i for i in range(10)} | {"wills/delayed"}
    assert set(wills) == expected, wills
    for topic, arrivals in wills.items():
        assert len(arrivals) == 1, (topic, arrivals)  # exactly once
        limit = LEASE_TTL + 2 + (2 if topic == "wills/delayed" else 0)
        assert arrivals[0][1] <= limit, (topic, arrivals[0][1])
    assert wills["wills/delayed"][0][1] >= 2  # not before its Will Delay

    again = RawClient(f2.port, 4)
    ack = again.connect("keeper", clean=False)
    assert ack.rc == 0 and ack.session_present
    got = [again.receive_publish_qos().payload for _ in range(5)]
    assert got == [b"k%d" % i for i in range(5)]
    for c in (again, pub, back, watcher, late_back):
        c.disconnect()


def test_clients_of_partitions_that_move_are_sent_to_the_new_leader(etcd, cluster_node):
    from partitions import partition
    cluster_node("s1", role="store", lease_ttl=LEASE_TTL)
    f1 = cluster_node("f1", role="frontend", lease_ttl=LEASE_TTL)
    assert wait_until(lambda: placed_on(ctl_status(etcd), ["s1"]))
    assert wait_until(lambda: all_applied(ctl_status(etcd), ["s1", "f1"]))
    clients = {}
    for i in range(16):
        c = RawClient(f1.port, 5)
        assert c.connect("mover-%d" % i).rc == 0
        clients["mover-%d" % i] = c
    cluster_node("s2", role="store", lease_ttl=LEASE_TTL)  # takes about half the partitions
    status = wait_until(lambda: (lambda s: placed_on(s, ["s1", "s2"]) and not s["moves"] and
                                 all_applied(s, ["s1", "s2", "f1"]) and s)(ctl_status(etcd)))
    assert status
    leaders = status["leaders"]
    moved = {cid for cid in clients if leaders[partition(cid, len(leaders))] == "s2"}
    assert moved and len(moved) < len(clients)
    for cid, c in clients.items():
        if cid in moved:
            c.expect_disconnect(rc=0x9C)  # Use another server
            assert c.wait_closed(5)
        else:
            c.ping()  # still served by s1
    # A moved client reconnects through the same front-end and is served by its new leader;
    # only one session per client id exists: a second connection takes it over.
    cid = sorted(moved)[0]
    again = RawClient(f1.port, 5)
    assert again.connect(cid).rc == 0
    other = RawClient(f1.port, 5)
    assert other.connect(cid).rc == 0
    again.expect_disconnect(rc=0x8E)
    for c in [other] + [c for cid, c in clients.items() if cid not in moved]:
        c.disconnect()


def test_qos0_to_a_slow_relayed_subscriber_is_dropped_at_its_session_node(etcd, cluster_node):
    """Downstream flow control: a front-end whose client does not read tells the session's
    node, which drops QoS 0 for it (counted) instead of sending everything to the front-end."""
    import socket
    from rawmqtt import publish_packet
    s1 = cluster_node("s1", role="store", lease_ttl=LEASE_TTL)
    f1 = cluster_node("f1", role="frontend", lease_ttl=LEASE_TTL)
    assert wait_until(lambda: placed_on(ctl_status(etcd), ["s1"]))
    assert wait_until(lambda: all_applied(ctl_status(etcd), ["s1", "f1"]))
    slow = RawClient(f1.port, 4)
    slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    assert slow.connect("slow-reader").rc == 0
    slow.subscribe([("slow/t", 0)])
    pub = RawClient(s1.port, 4)
    assert pub.connect("fast-writer").rc == 0
    payload = b"y" * 60000
    total = 64 << 20
    packet = publish_packet("slow/t", payload, qos=0, version=4)
    # ~64 MiB of QoS 0, never read by `slow`, in 1 MiB steps that s1 handles one at a time (so
    # its own link to f1 never backs up: only f1 knows that the client does not read).
    for _ in range(total // (17 * len(payload))):
        pub.send(packet * 17)
        pub.ping(timeout=30)
        time.sleep(0.01)
    assert wait_until(lambda: s1.metric("shardmq_broker_messages_dropped_total",
                                        reason="qos0_backpressure") > 0, timeout=10)
    rss_kb = int(open("/proc/%d/status" % f1.proc.pid).read().split("VmRSS:")[1].split()[0])
    assert rss_kb < 100 * 1024, rss_kb  # not the 64 MiB
    slow.close()
    pub.disconnect()
