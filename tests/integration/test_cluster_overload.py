"""QoS 0 overload protection (docs/cluster.md, "A QoS 0 flood"; real etcd, real shardmq
processes, raw clients).

A QoS 0 message that finds the link to the next node full is dropped there. With
cluster.qos0_overload = "hold" (the default) its publisher is then read no further until the
link has room, or for 100 ms at most, so a flood is slowed down at its source (TCP) instead of
being read, routed and dropped; the publisher stays connected and its order is kept. With
"drop" the node reads on and drops.

Each test stops the subscriber's node (SIGSTOP) so that the link to it fills, floods, checks the
publisher's side while the node is stopped, resumes it and checks that everything still works."""
import signal
import threading
import time

import pytest

from conftest import ctl_status
from partitions import key_led_by
from rawmqtt import PUBLISH, RawClient, publish_packet
from test_cluster import placed_on, wait_until
from test_cluster_sessions import all_applied

# 200,000 QoS 0 publishes of ~420 bytes (84 MB): far more than the link's queue, gRPC's
# window and the sockets between the nodes hold (tens of MB).
PER_CHUNK = 500
CHUNKS = 400
PAYLOAD = 400
HELD_S = 3.5  # how long a stalled publisher stays held: over 1.5 x its keepalive (2 s)
LEASE_TTL = 30   # far longer than a node stays stopped here
# No $SYS publications: they would be QoS 0 drops at the full link that hold no client, and the
# tests count drops against holds.
NO_SYS = {"sys_interval": 0}


def counter(node, name):
    return sum(v for (n, _), v in node.metrics().items() if n == name)


def flood_chunks(topic):
    """CHUNKS chunks of PER_CHUNK QoS 0 publishes to `topic`, numbered from 0 in the payload."""
    for c in range(CHUNKS):
        yield b"".join(publish_packet(topic, b"%08d" % (c * PER_CHUNK + i) + b"." * (PAYLOAD - 8))
                       for i in range(PER_CHUNK))


class Flooder:
    """Sends the flood from a thread; `sent` counts whole chunks written to the socket."""

    def __init__(self, client, topic):
        self.client = client
        self.topic = topic
        self.sent = 0
        self.errors = []
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        try:
            self.client.sock.settimeout(120)
            for chunk in flood_chunks(self.topic):
                self.client.sock.sendall(chunk)
                self.sent += 1
        except OSError as e:
            self.errors.append(e)

    def join(self):
        self.thread.join(120)
        assert not self.thread.is_alive()
        assert not self.errors, self.errors
        assert self.sent == CHUNKS


def stalls(flooder, timeout=60):
    """True once the flooder makes no progress for a second, short of the end (the buffers
    between the nodes take a while to fill)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and flooder.sent < CHUNKS:
        at = flooder.sent
        time.sleep(1.0)
        if flooder.sent == at < CHUNKS:
            return True
    return False


def check_order_and_done(sub, topic):
    """Reads publishes until the publisher's closing QoS 1 message: the flood messages that
    arrived (QoS 0: some may have been dropped) are in the order they were sent."""
    last = -1
    got = 0
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        p = sub.expect(PUBLISH, 30)
        assert p.topic == topic
        if p.payload == b"done":
            if p.qos:
                sub.puback(p.packet_id)
            return got
        seq = int(p.payload[:8])
        assert seq > last, (seq, last)
        last = seq
        got += 1
    raise AssertionError("the closing message did not arrive")


def two_nodes(etcd, cluster_node, policy):
    config = {"cluster": {"qos0_overload": policy}, "mqtt": NO_SYS}
    n1 = cluster_node("n1", lease_ttl=LEASE_TTL, config=config)
    n2 = cluster_node("n2", lease_ttl=LEASE_TTL, config=config)
    assert wait_until(lambda: placed_on(ctl_status(etcd), ["n1", "n2"]))
    assert wait_until(lambda: all_applied(ctl_status(etcd), ["n1", "n2"]))
    return n1, n2


@pytest.mark.parametrize("policy", ["hold", "drop"])
def test_a_qos0_flood_toward_a_stopped_node_is_slowed_at_its_source(etcd, cluster_node, policy):
    n1, n2 = two_nodes(etcd, cluster_node, policy)
    status = ctl_status(etcd)
    topic = key_led_by(status, "n1", "flood/")  # n2 forwards every publish to n1
    sub = RawClient(n1.port, 5)
    assert sub.connect(key_led_by(status, "n1", "sub-")).rc == 0
    sub.subscribe([(topic, 1)])
    pub = RawClient(n2.port, 5)
    # Served on n2. Held, it must still be read often enough for its keepalive; under "drop" it
    # is idle once its flood is read, while n1 stays stopped.
    keepalive = 2 if policy == "hold" else 60
    assert pub.connect(key_led_by(status, "n2", "pub-"), keepalive=keepalive).rc == 0
    flooder = Flooder(pub, topic)
    n1.proc.send_signal(signal.SIGSTOP)
    try:
        flooder.thread.start()
        if policy == "hold":
            assert wait_until(
                lambda: counter(n2, "shardmq_cluster_qos0_publisher_holds_total") >= 1,
                timeout=20)
            # The publisher ends up blocked in TCP, short of the end.
            assert stalls(flooder), flooder.sent
            time.sleep(HELD_S)
        else:
            # n2 reads the whole flood and drops what the link cannot take.
            assert wait_until(lambda: flooder.sent == CHUNKS, timeout=60), flooder.sent
        holds = counter(n2, "shardmq_cluster_qos0_publisher_holds_total")
        dropped = counter(n2, "shardmq_cluster_qos0_dropped_total")
    finally:
        n1.proc.send_signal(signal.SIGCONT)
    if policy == "hold":
        # Each hold costs the one message that met the full link; the rest waits unread.
        assert 1 <= dropped <= holds, (dropped, holds)
    else:
        # The whole flood was read (above); what the link could not take was dropped.
        assert holds == 0
        assert dropped > 0
    flooder.join()
    # Still connected, though held for longer than 1.5 x its keepalive (never more than
    # 100 ms at a time), and its order is kept.
    pub.sock.settimeout(pub.timeout)
    assert pub.publish_qos(topic, b"done", qos=1, timeout=30).rc == 0
    assert check_order_and_done(sub, topic) > 0


def test_a_relayed_publisher_is_held_through_its_front_end(etcd, cluster_node):
    """The publisher's session lives on S (n1), its socket on a front-end F (n3): S stops
    handling the relayed bytes, F's window fills and F stops reading the socket."""
    config = {"mqtt": NO_SYS}
    n1 = cluster_node("n1", lease_ttl=LEASE_TTL, config=config)
    n2 = cluster_node("n2", lease_ttl=LEASE_TTL, config=config)
    n3 = cluster_node("n3", role="frontend", lease_ttl=LEASE_TTL, config=config)
    assert wait_until(lambda: placed_on(ctl_status(etcd), ["n1", "n2"]))
    assert wait_until(lambda: all_applied(ctl_status(etcd), ["n1", "n2", "n3"]))
    status = ctl_status(etcd)
    topic = key_led_by(status, "n1", "relayed/")  # S owns the topic: it routes to n2 itself
    sub = RawClient(n2.port, 5)
    assert sub.connect(key_led_by(status, "n2", "sub-")).rc == 0
    sub.subscribe([(topic, 1)])
    will_topic = key_led_by(status, "n1", "wills/")
    wills = RawClient(n1.port, 5)
    assert wills.connect(key_led_by(status, "n1", "wills-")).rc == 0
    wills.subscribe([(will_topic, 1)])
    pub = RawClient(n3.port, 5)
    assert pub.connect(key_led_by(status, "n1", "pub-"), keepalive=2).rc == 0  # relayed to n1
    flooder = Flooder(pub, topic)
    n2.proc.send_signal(signal.SIGSTOP)
    try:
        flooder.thread.start()
        assert wait_until(lambda: counter(n1, "shardmq_cluster_qos0_publisher_holds_total") >= 1,
                          timeout=20)
        assert wait_until(lambda: counter(n3, "shardmq_cluster_relay_read_holds_total") >= 1,
                          timeout=20)
        assert stalls(flooder), flooder.sent
        stalled_at = time.monotonic()
        # Two more relayed clients with wills publish one QoS 0 message each into the full
        # link (so S holds them) and close: "quits" after a DISCONNECT, which S has read but
        # not handled when the front-end reports the close, "drops" without one. Only the
        # second will is published.
        for name in ("quits", "drops"):
            c = RawClient(n3.port, 5)
            will = {"topic": will_topic, "payload": name.encode(), "qos": 1}
            assert c.connect(key_led_by(status, "n1", name + "-"), will=will).rc == 0
            c.publish(topic, b"%08d" % 0)
            if name == "quits":
                c.disconnect()
            c.close()
        p = wills.expect(PUBLISH, 20)
        wills.puback(p.packet_id)
        assert p.payload == b"drops"
        assert wills.try_recv(1.0) is None
        time.sleep(max(0.0, HELD_S - (time.monotonic() - stalled_at)))
        holds = counter(n1, "shardmq_cluster_qos0_publisher_holds_total")
        dropped = counter(n1, "shardmq_cluster_qos0_dropped_total")
    finally:
        n2.proc.send_signal(signal.SIGCONT)
    assert 1 <= dropped <= holds, (dropped, holds)
    flooder.join()
    pub.sock.settimeout(pub.timeout)
    assert pub.publish_qos(topic, b"done", qos=1, timeout=30).rc == 0
    assert check_order_and_done(sub, topic) > 0
