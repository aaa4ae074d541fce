#!/usr/bin/python3
"""Smoke test of bench/cluster_compare (ctest integration.bench_cluster_compare_smoke).

Runs the single-node vs 3-node-cluster comparison at tiny sizes (--runs 1, 1 s per scenario,
2 fan-in publishers, 2 QoS 1 pairs) and checks that every scenario ran on both setups, that
messages arrived on both, and that no acknowledged QoS 1 message was lost. No timing
assertions.

Usage: cluster_compare_smoke.py PATH_TO_SHARDMQ PATH_TO_bench/cluster_compare
"""
import json
import os
import subprocess
import sys
import tempfile


def main():
    shardmq, script = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as tmp:
        out_json = os.path.join(tmp, "out.json")
        proc = subprocess.run(["/usr/bin/python3", script, "--shardmq", shardmq, "--runs", "1",
                               "--duration", "1", "--fan-in-publishers", "2", "--pairs", "2",
                               "--json", out_json],
                              capture_output=True, text=True, timeout=300)
        print(proc.stdout)
        print(proc.stderr, file=sys.stderr)
        if proc.returncode != 0:
            print("cluster_compare exited with %d" % proc.returncode)
            return 1
        with open(out_json) as f:
            records = json.load(f)["records"]
        seen = {(r["scenario"], r["setup"]) for r in records if "error" not in r}
        want = {(s, setup) for s in ("fan-in", "pairs-qos1") for setup in ("single", "cluster")}
        if seen != want:
            print("missing runs: %s" % sorted(want - seen))
            return 1
        for r in records:
            if r["received"] <= 0:
                print("nothing received: %r" % r)
                return 1
            if r["scenario"] == "pairs-qos1" and r["lost"] != 0:
                print("QoS 1 loss: %r" % r)
                return 1
        for line in ("fan-in", "pairs-qos1"):
            if not any(l.startswith(line) and "received msg/s" in l
                       for l in proc.stdout.splitlines()):
                print("no table row for %s" % line)
                return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
