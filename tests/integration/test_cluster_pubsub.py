"""Publishes between clients connected to different nodes of a cluster (real etcd, real
shardmq processes, paho / raw / mosquitto clients): exact and wildcard routes at the topics'
owners, QoS 0/1/2, order, SUBACK only after the route is registered cluster-wide, unsubscribe,
retained messages and wills across nodes, and a publish whose topic's owner is down.

A client's session lives on its client id's partition leader; connections to other nodes are
relayed there (test_cluster_sessions.py). Retained catch-up of a restarted node is here too."""
import subprocess
import time

import pytest

from conftest import SHARDMQ, Client, ctl_status
from rawmqtt import PUBACK, RawClient, SUBACK
from test_cluster import nodes_by_id, placed_on, wait_until


@pytest.fixture
def three(etcd, cluster_node):
    nodes = [cluster_node("n%d" % i) for i in (1, 2, 3)]
    assert wait_until(lambda: placed_on(ctl_status(etcd), ["n1", "n2", "n3"]))
    clients = []

    def client(node, version, cid=""):
        c = Client(None, version, cid, port=node.port)
        clients.append(c)
        return c

    yield nodes, client
    for c in clients:
        c.close()


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_subscriber_on_one_node_gets_publishes_from_the_others(three, version, qos):
    (n1, n2, n3), client = three
    sub = client(n1, version, "sub")
    sub.connect()
    sub.subscribe("fleet/+/temp", qos=2)
    sub.subscribe("exact/topic", qos=2)
    p2 = client(n2, version, "p2")
    p2.connect()
    p3 = client(n3, version, "p3")
    p3.connect()
    p2.publish("fleet/truck1/temp", b"from-n2", qos=qos)
    p3.publish("exact/topic", b"from-n3", qos=qos)
    p3.publish("fleet/truck2/speed", b"no-match", qos=qos)
    got = sorted((m.topic, m.payload, m.qos) for m in sub.expect_messages(2))
    assert got == [("exact/topic", b"from-n3", qos), ("fleet/truck1/temp", b"from-n2", qos)]
    sub.expect_no_message(0.5)


def test_order_is_kept_per_publisher_and_topic(three, version):
    (n1, n2, _), client = three
    sub = client(n1, version, "sub")
    sub.connect()
    sub.subscribe("seq/#", qos=1)
    pub = client(n2, version, "pub")
    pub.connect()
    for i in range(300):
        pub.publish("seq/a", b"%d" % i, qos=1, wait=False)
    msgs = sub.expect_messages(300, timeout=30)
    assert [int(m.payload) for m in msgs] == list(range(300))


def test_a_publish_after_suback_is_never_missed(three, version):
    (n1, n2, n3), client = three
    pub = client(n2, version, "pub")
    pub.connect()
    sub = client(n1, version, "sub")
    sub.connect()
    # New exact filters each time: their owners are spread over the three nodes.
    for i in range(30):
        topic = "race/%d" % i
        sub.subscribe(topic, qos=1)
        pub.publish(topic, b"x", qos=1)
        m = sub.expect_message(timeout=5)
        assert m.topic == topic


def test_unsubscribe_stops_remote_deliveries(three, version):
    (n1, n2, _), client = three
    sub = client(n1, version, "sub")
    sub.connect()
    sub.subscribe("u/t", qos=1)
    pub = client(n2, version, "pub")
    pub.connect()
    pub.publish("u/t", b"1", qos=1)
    assert sub.expect_message().payload == b"1"
    sub.unsubscribe("u/t")
    pub.publish("u/t", b"2", qos=1)
    sub.expect_no_message(0.7)


def test_retained_message_published_on_one_node_is_served_by_the_others(three, version):
    (n1, n2, n3), client = three
    pub = client(n2, version, "pub")
    pub.connect()
    pub.publish("ret/t", b"kept", qos=1, retain=True)
    for node in (n1, n3, n2):
        sub = client(node, version, "sub-" + node.name)
        sub.connect()
        sub.subscribe("ret/#", qos=1)
        m = sub.expect_message()
        assert (m.topic, m.payload, m.retain) == ("ret/t", b"kept", True)
        sub.disconnect()


def test_will_of_a_client_reaches_subscribers_on_other_nodes(three, version):
    (n1, n2, _), client = three
    sub = client(n2, version, "watcher")
    sub.connect()
    sub.subscribe("wills/#", qos=1)
    dying = client(n1, version, "dying")
    dying.connect(will={"topic": "wills/dying", "payload": b"gone", "qos": 1})
    dying.drop()
    m = sub.expect_message(timeout=10)
    assert (m.topic, m.payload) == ("wills/dying", b"gone")


def test_mosquitto_clients_across_nodes(three):
    (n1, n2, _), _ = three
    sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(n1.port), "-t", "m/#",
                            "-q", "1", "-C", "2", "-v", "-W", "10"],
                           stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)  # mosquitto_sub has no "subscribed" signal; the publishes below retry
    for payload in ("one", "two"):
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(n2.port), "-t", "m/x",
                        "-m", payload, "-q", "1"], check=True, timeout=10)
    out, _ = sub.communicate(timeout=15)
    assert out.splitlines() == ["m/x one", "m/x two"]


def test_topics_whose_owner_is_down_are_refused_with_a_reason(etcd, cluster_node):
    a = cluster_node("a")
    b = cluster_node("b")
    assert wait_until(lambda: placed_on(ctl_status(etcd), ["a", "b"]))
    b.kill()
    assert wait_until(lambda: not nodes_by_id(ctl_status(etcd))["b"]["alive"], timeout=10)
    c = RawClient(a.port, 5)
    c.connect("p")
    refused, accepted = [], []
    for i in range(24):
        topic = "down/%d" % i
        ack = c.publish_qos(topic, b"x", qos=1)
        (refused if ack.rc == 0x80 else accepted).append((topic, ack.rc))
    # b led about half the partitions: its topics fail, a's succeed.
    assert refused and accepted, (refused, accepted)
    assert all(rc == 0 for _, rc in accepted)
    assert a.metric("shardmq_cluster_forward_errors_total") >= len(refused)
    # A subscription to an exact filter in b's partitions is refused too (SUBACK 0x80).
    ack = c.subscribe([(refused[0][0], 1)])
    assert ack.rcs == [0x80]
    # MQTT 3.1.1 has no negative PUBACK: the connection is closed, so the client sends again.
    old = RawClient(a.port, "3.1.1")
    old.connect("p311")
    old.publish(refused[0][0], b"x", qos=1)
    assert old.wait_closed()
    # b comes back with its data directory: its topics work again.
    b.start()
    assert wait_until(lambda: nodes_by_id(ctl_status(etcd))["b"]["alive"], timeout=10)
    assert wait_until(lambda: c.publish_qos(refused[0][0], b"y", qos=1).rc == 0, timeout=10)
    c.disconnect()


def test_frontend_nodes_route_through_store_nodes(etcd, cluster_node):
    cluster_node("s1", role="store")
    cluster_node("s2", role="store")
    f1 = cluster_node("f1", role="frontend")
    f2 = cluster_node("f2", role="frontend")
    assert wait_until(lambda: placed_on(ctl_status(etcd), ["s1", "s2"]))
    sub = Client(None, "5", "s", port=f1.port)
    pub = Client(None, "5", "p", port=f2.port)
    try:
        sub.connect()
        sub.subscribe("front/+", qos=1)
        sub.subscribe("front/exact", qos=1)
        pub.connect()
        pub.publish("front/exact", b"e", qos=1)
        pub.publish("front/other", b"w", qos=1)
        got = sorted(m.payload for m in sub.expect_messages(2))
        assert got == [b"e", b"w"]  # one delivery per message, though two filters match one
    finally:
        sub.close()
        pub.close()


def test_shared_subscription_with_members_on_several_nodes_gets_each_message_once(three, version):
    (n1, n2, n3), client = three
    members = [client(n, version, "m-" + n.name) for n in (n1, n2)]
    for m in members:
        m.connect()
        m.subscribe("$share/workers/jobs/#", qos=1)
    plain = client(n2, version, "plain")
    plain.connect()
    plain.subscribe("jobs/#", qos=1)
    pubs = [client(n, version, "p-" + n.name) for n in (n1, n3)]
    for p in pubs:
        p.connect()
    for i in range(40):
        pubs[i % 2].publish("jobs/%d" % i, b"%d" % i, qos=1)
    got = []
    deadline = time.time() + 15
    while len(got) < 40 and time.time() < deadline:
        for m in members:
            try:
                got.append((m, m.messages.get(timeout=0.05)))
            except Exception:
                pass
    payloads = sorted(int(msg.payload) for _, msg in got)
    assert payloads == list(range(40)), payloads  # each once, none lost
    assert {id(m) for m, _ in got} == {id(m) for m in members}  # both nodes' members served
    for m in members:
        m.expect_no_message(0.3)
    # The plain subscriber gets every message, once.
    assert sorted(int(m.payload) for m in plain.expect_messages(40)) == list(range(40))
    plain.expect_no_message(0.3)


def test_a_restarted_node_catches_up_on_retained_messages_changed_while_it_was_down(
        etcd, cluster_node):
    from partitions import key_led_by
    a = cluster_node("a")
    b = cluster_node("b")
    assert wait_until(lambda: placed_on(ctl_status(etcd), ["a", "b"]))
    pub = Client(None, "5", "retainer", port=a.port)
    pub.connect()
    pub.publish("r/old", b"stale", qos=1, retain=True)
    pub.publish("r/kept", b"same", qos=1, retain=True)
    pub.publish("r/changed", b"v1", qos=1, retain=True)
    status = ctl_status(etcd)

    def read_on_b(expected):
        """What a subscriber whose session lives on b gets from b's retained index."""
        sub = Client(None, "5", key_led_by(status, "b", "reader-"), port=b.port)
        try:
            sub.connect()
            sub.subscribe("r/#", qos=1)
            got = {m.topic: m.payload for m in sub.expect_messages(expected)}
            sub.expect_no_message(0.5)
            return got
        finally:
            sub.close()

    assert read_on_b(3) == {"r/old": b"stale", "r/kept": b"same", "r/changed": b"v1"}
    b.stop()  # SIGTERM: drains its partitions to a, then leaves
    pub.publish("r/old", b"", qos=1, retain=True)          # cleared
    pub.publish("r/changed", b"v2", qos=1, retain=True)    # changed
    pub.publish("r/new", b"fresh", qos=1, retain=True)     # new
    pub.close()
    b.start()  # same data directory: it still has the three old ones
    status = wait_until(lambda: (lambda s: placed_on(s, ["a", "b"]) and s)(ctl_status(etcd)))
    assert status
    assert wait_until(lambda: b.metric("shardmq_cluster_retained_syncs_total") == 1, timeout=10)
    assert read_on_b(3) == {"r/kept": b"same", "r/changed": b"v2", "r/new": b"fresh"}
