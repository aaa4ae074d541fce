#!/usr/bin/python3
"""Smoke test of bench/compare (ctest integration.bench_compare_smoke).

Runs the whole comparison at tiny sizes (--scale 0.02 --runs 1: a few clients, about a second
per scenario, 380 idle connections, 20 persistent sessions x 10 messages) against Debian's
Mosquitto and the shardmq under test, then checks that the table and the --json output have
every scenario for both brokers and that nothing was lost where nothing may be (QoS 1, QoS 2,
persistent sessions). No timing assertions.

Usage: compare_smoke.py PATH_TO_SHARDMQ PATH_TO_bench/compare
Exit status 77 (ctest: skipped) when /usr/sbin/mosquitto is not installed.
"""
import json
import os
import subprocess
import sys
import tempfile

MOSQUITTO = "/usr/sbin/mosquitto"
SCENARIOS = ["fan-in", "pairs-qos1", "fan-out", "pairs-qos2", "latency", "idle-conns",
             "persistent"]
BROKERS = ["mosquitto", "shardmq"]
# Figures every successful record must have, per scenario.
FIGURES = {
    "fan-in": ["recv_rate", "cpu_per_m"],
    "pairs-qos1": ["recv_rate", "lost", "duplicates", "cpu_per_m"],
    "fan-out": ["recv_rate", "cpu_per_m"],
    "pairs-qos2": ["recv_rate", "lost", "duplicates", "cpu_per_m"],
    "latency": ["p50_ms", "p99_ms", "p999_ms", "cpu_per_m"],
    "idle-conns": ["connect_rate", "rss_per_conn", "cpu_per_k_conns"],
    "persistent": ["accumulate_rate", "drain_rate", "received", "lost", "cpu_per_m"],
}


def main():
    shardmq, compare = sys.argv[1], sys.argv[2]
    if not os.path.exists(MOSQUITTO):
        print("skipped: %s is not installed" % MOSQUITTO)
        return 77
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "compare.json")
        cmd = ["/usr/bin/python3", compare, "--shardmq", shardmq, "--mosquitto", MOSQUITTO,
               "--scale", "0.02", "--runs", "1", "--idle-conns", "19000", "--json", out]
        print("$ " + " ".join(cmd), flush=True)
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=100)
        print(r.stderr)
        print(r.stdout)
        assert r.returncode == 0, "exit status %d" % r.returncode
        with open(out) as f:
            report = json.load(f)

    for scenario in SCENARIOS:
        assert scenario in r.stdout, "table has no %s rows" % scenario
    header = next(line for line in r.stdout.splitlines() if line.startswith("scenario "))
    assert header.split() == ["scenario", "figure", "mosquitto", "shardmq", "shardmq/mosq",
                              "paired", "better"], header
    assert "FAILED" not in r.stdout
    assert report["problems"] == [], report["problems"]
    records = {(rec["scenario"], rec["broker"]): rec for rec in report["records"]}
    assert len(report["records"]) == len(SCENARIOS) * len(BROKERS), len(report["records"])
    for scenario in SCENARIOS:
        for broker in BROKERS:
            rec = records.get((scenario, broker))
            assert rec is not None, "no record for %s on %s" % (scenario, broker)
            assert rec["ok"], (scenario, broker, rec.get("error"))
            for key in FIGURES[scenario]:
                assert rec["figures"].get(key) is not None, (scenario, broker, key, rec)
            assert rec["cpu_s"] >= 0, rec
            assert report["medians"][scenario][broker], (scenario, broker)
    for broker in BROKERS:
        for scenario in ("pairs-qos1", "pairs-qos2", "persistent"):
            rec = records[(scenario, broker)]
            assert rec["figures"]["lost"] == 0, (scenario, broker, rec["figures"])
            assert all(s["exit_status"] == 0 for s in rec["bench"]), (scenario, broker)
        for scenario in ("pairs-qos1", "pairs-qos2"):
            s = records[(scenario, broker)]["bench"][0]
            assert s["acked"] > 0 and s["received_unique"] == s["acked"], (scenario, broker, s)
        persistent = records[("persistent", broker)]
        # --scale 0.02: 1,000 sessions -> 20, 1,000 messages -> 20.
        assert persistent["figures"]["received"] == persistent["expected"] == 20 * 20, persistent
        # The queueing phase is timed by the bench's own timestamps, so even a phase far
        # shorter than its 10 ms checks gets a rate.
        assert persistent["publish_s"] > 0 and persistent["figures"]["accumulate_rate"] > 0, \
            persistent
        idle = records[("idle-conns", broker)]
        assert idle["connections"] == 380, idle
    print("compare smoke OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
