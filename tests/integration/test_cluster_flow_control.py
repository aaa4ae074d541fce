"""Upstream flow control on relayed connections (real etcd, real shardmq processes, a raw
client).

A front-end passes a relayed client's bytes to its session's node S and keeps at most a window
of them unhandled at S (S reports what its worker handled: RelayData.consumed). Past the window
the front-end stops reading the client's socket, so a client that publishes faster than S
handles is slowed down by TCP, not disconnected, and nothing it sent is lost."""
import signal
import threading
import time

from conftest import ctl_status
from rawmqtt import PUBLISH, RawClient, publish_packet
from test_cluster import placed_on, wait_until
from test_cluster_sessions import all_applied

MESSAGES_PER_CHUNK = 1000
CHUNKS = 32  # 32,000 QoS 0 publishes of 1 KB: about 32 MiB, far more than the window


def holds(node):
    """shardmq_cluster_relay_read_holds_total, summed over the node's workers."""
    return sum(v for (name, _), v in node.metrics().items()
               if name == "shardmq_cluster_relay_read_holds_total")


def received(node):
    return sum(v for (name, _), v in node.metrics().items()
               if name == "shardmq_broker_messages_received_total")


def test_a_relayed_client_that_outruns_its_sessions_node_is_held_not_disconnected(
        etcd, cluster_node):
    s = cluster_node("s", role="store", lease_ttl=5)
    f = cluster_node("f", role="frontend", lease_ttl=5)
    assert wait_until(lambda: placed_on(ctl_status(etcd), ["s"]))
    assert wait_until(lambda: all_applied(ctl_status(etcd), ["s", "f"]))
    c = RawClient(f.port, 5)
    assert c.connect("flooder").rc == 0  # relayed: a front-end holds no session
    chunk = b"".join(publish_packet("flood/%d" % (i % 10), b"x" * 1000)
                     for i in range(MESSAGES_PER_CHUNK))
    sent = [0]
    errors = []

    def flood():
        try:
            c.sock.settimeout(60)
            for _ in range(CHUNKS):
                c.sock.sendall(chunk)
                sent[0] += 1
        except OSError as e:
            errors.append(e)

    # S stops handling anything: the front-end must not buffer the client's bytes without
    # bound, nor give up on the client.
    s.proc.send_signal(signal.SIGSTOP)
    sender = threading.Thread(target=flood, daemon=True)
    try:
        sender.start()
        assert wait_until(lambda: holds(f) >= 1, timeout=10)
        time.sleep(1.0)
        stalled_at = sent[0]
        time.sleep(1.0)
        # The sender is blocked in TCP: no progress while S is stopped, well short of the end.
        assert sent[0] == stalled_at < CHUNKS, (stalled_at, sent[0])
    finally:
        s.proc.send_signal(signal.SIGCONT)
    sender.join(90)
    assert not sender.is_alive()
    assert not errors, errors
    assert sent[0] == CHUNKS
    # The connection is still open and works, and S got every publish.
    c.sock.settimeout(c.timeout)
    assert c.publish_qos("flood/done", b"", qos=1).rc == 0
    assert wait_until(lambda: received(s) == MESSAGES_PER_CHUNK * CHUNKS + 1, timeout=20), \
        received(s)


def counter(node, name):
    return sum(v for (n, _), v in node.metrics().items() if n == name)


def test_an_owner_that_picks_itself_for_a_shared_subscription_during_a_peer_flood_keeps_going(
        etcd, cluster_node):
    """Regression (deadlock): an owner that picks itself for a shared subscription delivers on
    its own worker (BrokerCore::DeliverLocal). While messages from other nodes filled its
    workers' queue, that call waited for the workers, that is for itself, and the worker hung:
    no more PUBACKs, no more deliveries. Now a worker never waits there (a QoS 1 message goes
    past the bound: shardmq_cluster_peer_backlog_overruns_total)."""
    from partitions import key_led_by
    # n2 must not slow its flooder down when its link to n1 fills (overload protection,
    # test_cluster_overload.py): the flood has to keep n1's queue full.
    config = {"cluster": {"qos0_overload": "drop"}}
    n1 = cluster_node("n1", lease_ttl=5, config=config)
    n2 = cluster_node("n2", lease_ttl=5, config=config)
    assert wait_until(lambda: placed_on(ctl_status(etcd), ["n1", "n2"]))
    assert wait_until(lambda: all_applied(ctl_status(etcd), ["n1", "n2"]))
    status = ctl_status(etcd)
    shared_topic = key_led_by(status, "n1", "jobs/")
    flood_topic = key_led_by(status, "n2", "flood/")
    # n1's worker is made slow: 40 sessions there take every flood message (and never read).
    sinks = []
    for i in range(40):
        c = RawClient(n1.port, 5)
        assert c.connect(key_led_by(status, "n1", "sink-%d-" % i)).rc == 0
        c.subscribe("flood/#")
        sinks.append(c)
    member = RawClient(n1.port, 5)
    assert member.connect(key_led_by(status, "n1", "member-")).rc == 0
    member.subscribe([("$share/g/" + shared_topic, 1)])
    pub = RawClient(n1.port, 5)
    assert pub.connect(key_led_by(status, "n1", "pub-")).rc == 0
    flooder = RawClient(n2.port, 5)
    assert flooder.connect(key_led_by(status, "n2", "flooder-")).rc == 0
    chunk = b"".join(publish_packet(flood_topic, b"x" * 100) for _ in range(2000))
    stop = threading.Event()

    def flood():
        try:
            flooder.sock.settimeout(5)
            deadline = time.monotonic() + 60
            while not stop.is_set() and time.monotonic() < deadline:
                flooder.sock.sendall(chunk)
        except OSError:
            pass

    sender = threading.Thread(target=flood, daemon=True)
    sender.start()
    try:
        # The flood fills n1's queue of messages from n2 (its peer stream waits).
        assert wait_until(lambda: counter(n1, "shardmq_cluster_peer_stream_waits_total") > 0,
                          timeout=20)
        # QoS 1 publishes to the shared subscription, each picked by n1 for its own member:
        # every one is acknowledged.
        for i in range(200):
            assert pub.publish_qos(shared_topic, b"job-%d" % i, qos=1, timeout=10).rc == 0
        overruns = counter(n1, "shardmq_cluster_peer_backlog_overruns_total")
    finally:
        stop.set()
        sender.join(30)
    # Some of them did meet a full queue (else this test shows nothing), and all arrive.
    assert overruns > 0
    got = set()
    deadline = time.monotonic() + 30
    while len(got) < 200 and time.monotonic() < deadline:
        p = member.expect(PUBLISH, 10)
        got.add(p.payload)
        member.puback(p.packet_id)
    assert got == {b"job-%d" % i for i in range(200)}
