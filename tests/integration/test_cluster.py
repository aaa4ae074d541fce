"""Cluster membership with a real etcd and real shardmq processes: joining, the controller's
partition map, `shardmq ctl status`, node loss (SIGKILL: the lease expires, the partitions wait
for the node) and return, and start-up refusals.

Publishes, sessions and routes do not cross nodes yet (see docs/cluster.md); these tests cover
the coordination layer they will stand on."""
import json
import subprocess
import time

from conftest import SHARDMQ, ctl_status


def wait_until(pred, timeout=20.0, interval=0.05):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    return pred()


def nodes_by_id(status):
    return {n["node_id"]: n for n in status["nodes"]}


def placed_on(status, ids):
    """Every partition placed, every node of `ids` leads some, and each has applied the map."""
    nodes = nodes_by_id(status)
    led = sum(n["partitions_led"] for n in status["nodes"])
    return (status["map_revision"] > 0 and led == status["partitions"] and
            all(i in nodes and nodes[i]["partitions_led"] > 0 and
                nodes[i]["applied_revision"] == status["map_revision"] for i in ids))


def test_three_nodes_join_and_share_the_partitions(etcd, cluster_node):
    for i in (1, 2, 3):
        cluster_node("n%d" % i)
    status = wait_until(lambda: placed_on(ctl_status(etcd), ["n1", "n2", "n3"]) and ctl_status(etcd))
    assert status, ctl_status(etcd)
    assert status["partitions"] == 256
    nodes = nodes_by_id(status)
    assert sorted(nodes) == ["n1", "n2", "n3"]
    assert sum(1 for n in nodes.values() if n["controller"]) == 1
    for n in nodes.values():
        assert n["alive"] and n["role"] == "all" and n["store_state"] == "active"
        assert n["cluster_addr"].startswith("127.0.0.1:") and n["mqtt_addr"].startswith("127.0.0.1:")
        # Roughly a third each (ring with virtual nodes).
        assert 40 < n["partitions_led"] < 130, status


def test_ctl_status_table(etcd, cluster_node):
    cluster_node("solo")
    assert wait_until(lambda: placed_on(ctl_status(etcd), ["solo"]))
    out = subprocess.run([SHARDMQ, "ctl", "status", "--etcd", etcd.endpoint],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "256 partitions" in out.stdout and "controller solo" in out.stdout
    assert "solo" in out.stdout and "256" in out.stdout
    assert "moves in progress: none" in out.stdout


def test_frontend_holds_no_partitions(etcd, cluster_node):
    cluster_node("store1", role="store")
    cluster_node("front1", role="frontend")
    status = wait_until(lambda: placed_on(ctl_status(etcd), ["store1"]) and ctl_status(etcd))
    assert status
    nodes = nodes_by_id(status)
    assert nodes["front1"]["role"] == "frontend" and nodes["front1"]["alive"]
    assert nodes["front1"]["partitions_led"] == 0 and nodes["front1"]["store_state"] == "-"
    assert nodes["front1"]["applied_revision"] == status["map_revision"]
    assert nodes["store1"]["partitions_led"] == 256 and nodes["store1"]["controller"]


def test_killed_node_leaves_after_its_lease_and_keeps_its_partitions_until_it_returns(
        etcd, cluster_node):
    a = cluster_node("a")
    b = cluster_node("b")
    before = wait_until(lambda: placed_on(ctl_status(etcd), ["a", "b"]) and ctl_status(etcd))
    assert before
    led_b = nodes_by_id(before)["b"]["partitions_led"]
    killed_at = time.time()
    b.kill()
    # Lease TTL 2 s: gone from the members within TTL + 2 s.
    after = wait_until(lambda: (lambda s: not nodes_by_id(s)["b"]["alive"] and s)(ctl_status(etcd)),
                       timeout=10)
    assert after, ctl_status(etcd)
    assert time.time() - killed_at < 2 + 2 + 1
    nodes = nodes_by_id(after)
    # Without replicas its partitions wait for it (their data is on its disk).
    assert nodes["b"]["partitions_led"] == led_b and nodes["b"]["store_state"] == "active"
    assert after["map_revision"] == before["map_revision"]
    if before and nodes_by_id(before)["b"]["controller"]:
        assert nodes["a"]["controller"]
    # It comes back with the same data directory and takes its place again.
    b.start()
    back = wait_until(lambda: (lambda s: nodes_by_id(s)["b"]["alive"] and
                               nodes_by_id(s)["b"]["applied_revision"] == s["map_revision"] and s)(
        ctl_status(etcd)), timeout=5)
    assert back
    assert nodes_by_id(back)["b"]["partitions_led"] == led_b


def test_a_joining_node_takes_about_a_third(etcd, cluster_node):
    cluster_node("a")
    cluster_node("b")
    before = wait_until(lambda: placed_on(ctl_status(etcd), ["a", "b"]) and ctl_status(etcd))
    assert before
    cluster_node("c")
    # Copy-then-flip: c gets its share as each partition's sessions are copied over; done
    # when no move is left.
    settled = lambda s: placed_on(s, ["a", "b", "c"]) and not s["moves"] and s  # noqa: E731
    after = wait_until(lambda: settled(ctl_status(etcd)))
    assert after
    assert after["map_revision"] > before["map_revision"]
    moved = nodes_by_id(after)["c"]["partitions_led"]
    assert 256 / 3 * 0.5 < moved < 256 / 3 * 1.5, after


def test_sigterm_leaves_at_once(etcd, cluster_node):
    a = cluster_node("a", lease_ttl=30)  # a long lease: only the revoke can make it quick
    assert wait_until(lambda: placed_on(ctl_status(etcd), ["a"]))
    assert a.stop() == 0
    status = ctl_status(etcd)
    assert not nodes_by_id(status)["a"]["alive"]


def test_bad_cluster_settings_fail_at_start_naming_the_field(tmp_path):
    cfg = tmp_path / "c.json"
    cases = [
        ({"cluster": {"role": "frontend"}}, "cluster.etcd"),
        ({"cluster": {"role": "relay"}}, "cluster.role"),
        ({"cluster": {"lease_ttl": 1, "etcd": ["127.0.0.1:2379"]}}, "cluster.lease_ttl"),
        ({"cluster": {"etcd": ["nonsense"]}}, "cluster.etcd"),
        ({"cluster": {"etcd_prefix": "shardmq"}}, "cluster.etcd_prefix"),
    ]
    for config, field in cases:
        cfg.write_text(json.dumps(config))
        out = subprocess.run([SHARDMQ, "--config", str(cfg), "--data-dir", str(tmp_path / "d"),
                              "--mqtt", "127.0.0.1:0", "--admin", "127.0.0.1:0"],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 2, (config, out.stderr)
        assert field in out.stderr, (config, out.stderr)


def test_unreachable_etcd_fails_at_start(tmp_path):
    from conftest import free_port
    out = subprocess.run([SHARDMQ, "--data-dir", str(tmp_path / "d"), "--mqtt", "127.0.0.1:0",
                          "--admin", "127.0.0.1:0", "--cluster-addr", "127.0.0.1:0",
                          "--etcd", "127.0.0.1:%d" % free_port()],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert "cannot join the cluster" in out.stderr and "etcd" in out.stderr


def test_partition_count_mismatch_is_refused(etcd, cluster_node, tmp_path):
    cluster_node("a")
    assert wait_until(lambda: placed_on(ctl_status(etcd), ["a"]))
    cfg = tmp_path / "p.json"
    cfg.write_text(json.dumps({"storage": {"partitions": 64}}))
    out = subprocess.run([SHARDMQ, "--config", str(cfg), "--data-dir", str(tmp_path / "d64"),
                          "--mqtt", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--node-id", "b",
                          "--cluster-addr", "127.0.0.1:0", "--etcd", etcd.endpoint],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert "256 partitions" in out.stderr and "storage.partitions = 64" in out.stderr


def test_ctl_status_without_a_cluster(etcd):
    out = subprocess.run([SHARDMQ, "ctl", "status", "--etcd", etcd.endpoint],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 1 and "no cluster under /shardmq/" in out.stderr
    out = subprocess.run([SHARDMQ, "ctl", "status"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "--etcd" in out.stderr


def test_cluster_metrics_on_the_real_metrics_endpoint_pass_promtool(etcd, cluster_node):
    import urllib.request
    a = cluster_node("a")
    b = cluster_node("b")
    status = wait_until(lambda: placed_on(ctl_status(etcd), ["a", "b"]) and ctl_status(etcd))
    assert status
    nodes = nodes_by_id(status)
    for node in (a, b):
        nid = node.name
        assert wait_until(lambda: node.metric("shardmq_cluster_partition_map_revision") ==
                          status["map_revision"], timeout=5)
        assert node.metric("shardmq_cluster_members") == 2
        assert node.metric("shardmq_cluster_partitions_led") == nodes[nid]["partitions_led"]
        assert node.metric("shardmq_cluster_controller") == (1 if nodes[nid]["controller"] else 0)
        assert node.metric("shardmq_cluster_lease_losses_total") == 0
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % a.admin_port, timeout=10) as r:
        text = r.read()
    out = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                         timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    # The partitions led across the nodes add up to the whole map.
    assert a.metric("shardmq_cluster_partitions_led") + \
        b.metric("shardmq_cluster_partitions_led") == 256


def ctl(etcd, *args, timeout=60):
    return subprocess.run([SHARDMQ, "ctl"] + list(args) + ["--etcd", etcd.endpoint],
                          capture_output=True, text=True, timeout=timeout)


def test_ctl_drain_moves_a_nodes_partitions_away_and_undrain_brings_them_back(etcd, cluster_node):
    for n in ("a", "b", "c"):
        cluster_node(n)
    assert wait_until(lambda: placed_on(ctl_status(etcd), ["a", "b", "c"]))
    out = ctl(etcd, "drain", "c", "--wait", "--timeout", "20")
    assert out.returncode == 0, out.stderr
    assert "c: draining" in out.stdout and "c leads no partition" in out.stdout
    status = ctl_status(etcd)
    nodes = nodes_by_id(status)
    assert nodes["c"]["partitions_led"] == 0 and nodes["c"]["store_state"] == "draining"
    assert nodes["c"]["alive"]
    assert nodes["a"]["partitions_led"] + nodes["b"]["partitions_led"] == 256
    out = ctl(etcd, "undrain", "c")
    assert out.returncode == 0, out.stderr
    back = wait_until(lambda: placed_on(ctl_status(etcd), ["a", "b", "c"]) and ctl_status(etcd))
    assert back and nodes_by_id(back)["c"]["store_state"] == "active"


def test_ctl_drain_refuses_unknown_nodes_and_bad_usage(etcd, cluster_node):
    cluster_node("a")
    assert wait_until(lambda: placed_on(ctl_status(etcd), ["a"]))
    out = ctl(etcd, "drain", "nobody")
    assert out.returncode == 1 and "nobody is not a store node" in out.stderr
    out = ctl(etcd, "drain")
    assert out.returncode == 2 and "which node" in out.stderr
    out = ctl(etcd, "drain", "a", "--wait", "--timeout", "1")  # nowhere to move: times out
    assert out.returncode == 1 and "still leads 256 partitions" in out.stderr


def test_sigterm_on_a_store_node_drains_it_before_it_exits(etcd, cluster_node):
    a = cluster_node("a")
    b = cluster_node("b")
    assert wait_until(lambda: placed_on(ctl_status(etcd), ["a", "b"]))
    assert b.stop() == 0
    # Already moved when the process is gone: nothing waits for a TTL.
    status = ctl_status(etcd)
    nodes = nodes_by_id(status)
    assert not nodes["b"]["alive"] and nodes["b"]["partitions_led"] == 0
    assert nodes["b"]["store_state"] == "draining"
    assert nodes["a"]["partitions_led"] == 256
    assert "drained: this node leads no partition" in b.log_tail()
    # Back with the same data directory: active again, its share returns.
    b.start()
    assert wait_until(lambda: placed_on(ctl_status(etcd), ["a", "b"]))


def test_sigterm_on_the_last_store_node_exits_without_waiting(etcd, cluster_node):
    a = cluster_node("a")
    assert wait_until(lambda: placed_on(ctl_status(etcd), ["a"]))
    started = time.time()
    assert a.stop() == 0
    assert time.time() - started < 5
    assert "exiting without a complete drain" in a.log_tail()


def test_a_node_paused_past_its_lease_notices_and_rejoins(etcd, cluster_node):
    import signal
    a = cluster_node("a")
    b = cluster_node("b")
    assert wait_until(lambda: placed_on(ctl_status(etcd), ["a", "b"]))
    b.proc.send_signal(signal.SIGSTOP)
    try:
        # Lease TTL 2 s: the others see it gone; its partitions wait for it (no replicas).
        gone = wait_until(lambda: (lambda s: not nodes_by_id(s)["b"]["alive"] and s)(
            ctl_status(etcd)), timeout=10)
        assert gone, ctl_status(etcd)
        assert nodes_by_id(gone)["b"]["partitions_led"] > 0
    finally:
        b.proc.send_signal(signal.SIGCONT)
    # Its next keep-alive finds the lease gone: it says so, counts it, and rejoins.
    back = wait_until(lambda: (lambda s: nodes_by_id(s)["b"]["alive"] and s)(ctl_status(etcd)),
                      timeout=15)
    assert back
    assert wait_until(lambda: b.metric("shardmq_cluster_lease_losses_total") == 1, timeout=5)
    assert "membership lease" in b.log_tail(200) and "expired" in b.log_tail(200)
    # And it works as before: a publish on a reaches a subscriber on b.
    from conftest import Client
    sub = Client(None, "5", "s", port=b.port)
    pub = Client(None, "5", "p", port=a.port)
    try:
        sub.connect()
        sub.subscribe("after/pause", qos=1)
        pub.connect()
        pub.publish("after/pause", b"ok", qos=1)
        assert sub.expect_message().payload == b"ok"
    finally:
        sub.close()
        pub.close()
