#!/usr/bin/python3
"""Smoke test of `shardmq bench` against the real broker (ctest integration.bench_smoke).

Starts `shardmq serve` on ephemeral ports (--ready-file), runs short pubsub and conn loads with
--json, and checks the accounting: every acknowledged message arrived exactly once, nothing was
lost, exit status 0. No timing thresholds.

Usage: bench_smoke.py PATH_TO_SHARDMQ
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time


def start_broker(shardmq, workdir):
    ready = os.path.join(workdir, "ready.json")
    log = open(os.path.join(workdir, "broker.log"), "wb")
    proc = subprocess.Popen(
        [shardmq, "serve", "--mqtt", "127.0.0.1:0", "--admin", "127.0.0.1:0",
         "--data-dir", os.path.join(workdir, "data"), "--ready-file", ready],
        stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 30
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit("broker exited with %s" % proc.returncode)
        if os.path.exists(ready):
            with open(ready) as f:
                return proc, json.load(f)["mqtt"]
        time.sleep(0.02)
    proc.kill()
    sys.exit("broker did not become ready")


def bench(shardmq, port, *args):
    cmd = [shardmq, "bench"] + list(args) + ["--port", str(port), "--json", "--quiet"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    print("$ " + " ".join(cmd))
    print(r.stdout + r.stderr)
    assert r.returncode == 0, "exit status %d" % r.returncode
    return json.loads(r.stdout)


def check_pubsub(s):
    assert s["errors"] == 0 and s["connect_failed"] == 0, s
    assert s["acked"] > 0, s
    assert s["received"] == s["acked"], s
    assert s["lost"] == 0 and s["duplicates"] == 0, s
    assert s["unacked"] == 0, s
    assert s["latency_us"]["count"] == s["received"], s
    assert s["ok"] is True, s


def main():
    shardmq = sys.argv[1]
    with tempfile.TemporaryDirectory() as workdir:
        proc, port = start_broker(shardmq, workdir)
        try:
            # 4 publisher/subscriber pairs, QoS 1, MQTT 5, 2 s. At a moderate --rate: unlimited
            # publishers can outrun a subscriber on a loaded machine, and then the broker drops
            # by policy (mqtt.max_queued_messages), which this test is not about.
            check_pubsub(bench(shardmq, port, "pubsub", "-c", "4", "--qos", "1",
                               "--rate", "2000", "--duration", "2"))
            # QoS 2 over 3.1.1, bounded by --count, fan-in (600 messages: within any queue).
            s = bench(shardmq, port, "pubsub", "-c", "3", "--qos", "2", "--version", "3.1.1",
                      "--count", "200", "--fan-in")
            check_pubsub(s)
            assert s["sent"] == 600 and s["acked"] == 600, s
            # The same through one wildcard subscription (--sub-topic) instead of one per topic.
            s = bench(shardmq, port, "pubsub", "-c", "3", "--qos", "1", "--count", "200",
                      "--fan-in", "--sub-topic", "bench/#")
            check_pubsub(s)
            assert s["sent"] == 600 and s["subscribers"] == 1, s
            # Persistent sessions: subscribe and go away, messages queue, come back without
            # subscribing again (--no-subscribe) and receive them all.
            session = ["--no-clean", "--client-prefix", "smoke-persist-", "--qos", "1",
                       "-t", "smoke/persist"]
            s = bench(shardmq, port, "sub", "-c", "3", "--duration", "0.2", *session)
            assert s["connected"] == 3, s
            s = bench(shardmq, port, "pub", "-c", "1", "--count", "50", *session)
            assert s["acked"] == 50, s
            s = bench(shardmq, port, "sub", "-c", "3", "--count", "50", "--no-subscribe",
                      *session)
            assert s["received_unique"] == 150 and s["lost"] == 0, s
            # QoS 0 at a fixed rate, fan-out: each message reaches all 3 subscribers.
            s = bench(shardmq, port, "pubsub", "-c", "3", "--qos", "0", "--rate", "200",
                      "--count", "100", "--fan-out")
            assert s["sent"] == 100 and s["received"] == 300 and s["lost"] == 0, s
            # Idle connections.
            s = bench(shardmq, port, "conn", "-c", "20", "--connect-rate", "200",
                      "--duration", "0.5")
            assert s["connected"] == 20 and s["connect_failed"] == 0, s
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        # A broker that is not there: connect failure, exit status 1.
        r = subprocess.run([shardmq, "bench", "pub", "--port", str(port), "--quiet",
                            "--connect-timeout", "2", "--duration", "1"],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    print("bench smoke OK")


if __name__ == "__main__":
    main()
