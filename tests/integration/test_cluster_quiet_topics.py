"""Quiet topics (real etcd, real shardmq processes, paho clients).

A QoS 0 publish that matches no other node's route need not cross the cluster: the topic's
owner tells the publisher's node so (proto QuietGrant), and that node stops forwarding QoS 0
publishes for the topic. Before the owner acknowledges a route that matches the topic, it ends
the grant (Peer.Revoke), so a publish that follows a SUBACK is never skipped. Each round below
first shows the publisher's node skipping the topic, then subscribes somewhere else and
publishes right after the SUBACK."""
import pytest

from conftest import Client, ctl_status
from partitions import key_led_by
from test_cluster import placed_on, wait_until


def metric(node, name):
    return sum(v for (n, _), v in node.metrics().items() if n == name)


@pytest.fixture
def three(etcd, cluster_node):
    nodes = {i: cluster_node(i) for i in ("n1", "n2", "n3")}
    assert wait_until(lambda: placed_on(ctl_status(etcd), ["n1", "n2", "n3"]))
    clients = []

    def client(node, version, cid):
        c = Client(None, version, cid, port=node.port)
        clients.append(c)
        c.connect()
        return c

    yield nodes, ctl_status(etcd), client
    for c in clients:
        c.close()


def make_quiet(pub, topic, node):
    """Publishes QoS 0 to `topic` until `node` (the publisher's) skips one (bounded)."""
    skipped = metric(node, "shardmq_cluster_forwards_skipped_total")
    for i in range(200):
        pub.publish(topic, b"quiet-%d" % i, qos=0)
        if wait_until(lambda: metric(node, "shardmq_cluster_forwards_skipped_total") > skipped,
                      timeout=0.1, interval=0.02):
            return
    pytest.fail("the publisher's node never skipped a publish for %s" % topic)


@pytest.mark.parametrize("case", ["exact-elsewhere", "wildcard-at-owner", "shared-at-publisher"])
def test_a_publish_after_a_suback_is_never_skipped_as_quiet(three, case):
    nodes, status, client = three
    n1, n2, n3 = nodes["n1"], nodes["n2"], nodes["n3"]
    # The publisher's session lives on n2; the topics' owner is n3.
    pub = client(n2, "5", key_led_by(status, "n2", "pub-"))
    for round_ in range(3):
        topic = key_led_by(status, "n3", "quiet/%s/%d/" % (case, round_))
        make_quiet(pub, topic, n2)
        if case == "exact-elsewhere":  # a route from another node, at the owner
            sub = client(n1, "5", key_led_by(status, "n1", "sub-%d-" % round_))
            sub.subscribe(topic, qos=0)
        elif case == "wildcard-at-owner":  # in process at the owner
            sub = client(n3, "5", key_led_by(status, "n3", "sub-%d-" % round_))
            sub.subscribe("quiet/%s/%d/#" % (case, round_), qos=0)
        else:  # on the publisher's own node, but shared: the owner picks the member
            sub = client(n2, "5", key_led_by(status, "n2", "sub-%d-" % round_))
            sub.subscribe("$share/g/" + topic, qos=0)
        pub.publish(topic, b"after-suback", qos=0)
        got = sub.expect_messages(1)
        assert [(m.topic, m.payload) for m in got] == [(topic, b"after-suback")]
    assert metric(n3, "shardmq_cluster_quiet_revokes_total") >= 3


def test_a_quiet_topic_stays_on_its_node_and_its_own_subscribers_get_it(three):
    nodes, status, client = three
    n2, n3 = nodes["n2"], nodes["n3"]
    topic = key_led_by(status, "n3", "local-only/")
    pub = client(n2, "5", key_led_by(status, "n2", "pub-"))
    local = client(n2, "5", key_led_by(status, "n2", "local-"))
    local.subscribe(topic, qos=0)
    make_quiet(pub, topic, n2)
    forwarded = metric(n2, "shardmq_cluster_forwarded_total")
    skipped = metric(n2, "shardmq_cluster_forwards_skipped_total")
    for i in range(50):
        pub.publish(topic, b"m%d" % i, qos=0)
    assert wait_until(lambda: metric(n2, "shardmq_cluster_forwards_skipped_total")
                      == skipped + 50)
    assert metric(n2, "shardmq_cluster_forwarded_total") == forwarded
    # QoS 1 still goes to the owner (its acknowledgement is the owner's).
    pub.publish(topic, b"qos1", qos=1)
    assert wait_until(lambda: metric(n2, "shardmq_cluster_forwarded_total") == forwarded + 1)
    # The local subscriber got every one, in order (after the ones make_quiet sent).
    payloads = []
    for _ in range(300):
        payloads.append(local.expect_messages(1)[0].payload)
        if payloads[-1] == b"qos1":
            break
    assert [p for p in payloads if not p.startswith(b"quiet-")] == \
        [b"m%d" % i for i in range(50)] + [b"qos1"]
