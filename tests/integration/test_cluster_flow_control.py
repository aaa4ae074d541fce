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
from rawmqtt import RawClient, publish_packet
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
