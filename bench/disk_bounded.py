#!/usr/bin/python3
"""Does the data directory stay bounded under a steady workload?

Starts shardmq on a temporary data directory (or --data-dir), connects --subscribers persistent
QoS 1 subscribers (MQTT 3.1.1, clean session 0, all on "disk/#", online and acknowledging), and
runs --publishers publishers at a fixed total --rate of QoS 1 messages over --topics topics
(every --retain-every-th message retained, so the retained set stays at most --topics) for
--minutes. Every --sample seconds it prints the data directory size (total, write-ahead logs,
table files), file count and message counts. At the end it prints min / max / final and compares
the average size over the last third of the samples with the first third:

  exit 0  bounded   (last third <= --growth x first third)
  exit 1  growing   (last third >  --growth x first third)
  exit 2  the run itself failed (broker died, subscribers fell behind by more than --lag-limit)

After the run it stops the broker, restarts it once on the same directory and prints how long
that start took (what the directory costs: write-ahead log replay).

A tool, not a test: run it by hand or in a soak job, e.g.
  /usr/bin/python3 bench/disk_bounded.py --minutes 5
"""
import argparse
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
import rawmqtt as R  # noqa: E402


def dir_sizes(path):
    """(total bytes, *.log bytes, *.sst bytes, files)."""
    total = wal = sst = files = 0
    for root, _, names in os.walk(path):
        for n in names:
            try:
                s = os.path.getsize(os.path.join(root, n))
            except OSError:
                continue
            files += 1
            total += s
            if n.endswith(".log"):
                wal += s
            elif n.endswith(".sst"):
                sst += s
    return total, wal, sst, files


def connect(port_file, cid, clean, stop, timeout=30):
    """RawClient connected (MQTT 3.1.1) to the port in port_file; retries until `timeout`."""
    deadline = time.monotonic() + timeout
    while not stop.is_set() and time.monotonic() < deadline:
        try:
            with open(port_file) as f:
                port = json.load(f)["mqtt"]
            c = R.RawClient(port, 4, timeout=10)
            ack = c.connect(cid, clean=clean, keepalive=0)
            if ack.rc == 0:
                return c
            c.close()
        except (OSError, ValueError, R.Timeout, R.Closed, R.UnexpectedPacket):
            pass
        time.sleep(0.2)
    return None


def subscriber(i, port_file, stop, received, errors):
    cid = "disk-sub-%d" % i
    first = True
    while not stop.is_set():
        c = connect(port_file, cid, False, stop)
        if c is None:
            if not stop.is_set():
                with errors.get_lock():
                    errors.value += 1
            return
        try:
            if first:
                c.subscribe([("disk/#", 1)])
                first = False
            n = 0
            while not stop.is_set():
                try:
                    p = c.recv(0.5)
                except R.Timeout:
                    continue
                if p.type == R.PUBLISH:
                    if p.qos == 1:
                        c.puback(p.packet_id)
                    n += 1
                    if n >= 100:
                        with received.get_lock():
                            received.value += n
                        n = 0
            with received.get_lock():
                received.value += n
            c.disconnect()
        except (R.Closed, OSError):
            with errors.get_lock():
                errors.value += 1
        finally:
            c.close()


def publisher(i, port_file, stop, rate, topics, payload, retain_every, window, published, errors):
    c = connect(port_file, "disk-pub-%d" % i, True, stop)
    if c is None:
        with errors.get_lock():
            errors.value += 1
        return
    body = os.urandom(payload)
    t0 = time.monotonic()
    seq, inflight, acked = 0, set(), 0
    try:
        while not stop.is_set():
            allowed = rate * (time.monotonic() - t0)
            while seq < allowed and len(inflight) < window:
                pid = seq % 60000 + 1
                topic = "disk/t/%d" % ((seq * 7919 + i) % topics)
                retain = retain_every > 0 and seq % retain_every == 0
                c.publish(topic, body, qos=1, retain=retain, packet_id=pid)
                inflight.add(pid)
                seq += 1
            try:
                p = c.recv(0.01)
            except R.Timeout:
                continue
            if p.type == R.PUBACK and p.packet_id in inflight:
                inflight.discard(p.packet_id)
                acked += 1
                if acked % 100 == 0:
                    with published.get_lock():
                        published.value += 100
        # Let the last acknowledgements come in.
        deadline = time.monotonic() + 10
        while inflight and time.monotonic() < deadline:
            try:
                p = c.recv(0.2)
            except R.Timeout:
                continue
            if p.type == R.PUBACK and p.packet_id in inflight:
                inflight.discard(p.packet_id)
                acked += 1
        with published.get_lock():
            published.value += acked % 100
        c.disconnect()
    except (R.Closed, OSError):
        with errors.get_lock():
            errors.value += 1
    finally:
        c.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--shardmq", default=os.environ.get(
        "SHARDMQ_BIN", os.path.join(REPO, "build", "broker", "shardmq")))
    p.add_argument("--minutes", type=float, default=5.0)
    p.add_argument("--sample", type=float, default=10.0, help="seconds between samples")
    p.add_argument("--subscribers", type=int, default=10)
    p.add_argument("--publishers", type=int, default=2)
    p.add_argument("--rate", type=float, default=500.0, help="messages/s, all publishers")
    p.add_argument("--topics", type=int, default=100)
    p.add_argument("--payload", type=int, default=256, help="bytes")
    p.add_argument("--retain-every", type=int, default=20, help="0 = never retained")
    p.add_argument("--window", type=int, default=50, help="unacknowledged per publisher")
    p.add_argument("--durability", default="wal", choices=["wal", "fsync"])
    p.add_argument("--growth", type=float, default=2.0,
                   help="fail if the last third's average > GROWTH x the first third's")
    p.add_argument("--lag-limit", type=float, default=0.2,
                   help="fail the run if subscribers receive < (1 - LIMIT) of what they should")
    p.add_argument("--data-dir", default=None, help="data directory (default: a new temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    a = p.parse_args()
    if a.subscribers + a.publishers > 500:
        p.error("at most 500 client processes")
    if a.minutes * 60 < 3 * a.sample:
        p.error("--minutes too short for three samples")

    workdir = tempfile.mkdtemp(prefix="shardmq-disk-")
    data_dir = a.data_dir or os.path.join(workdir, "data")
    ready = os.path.join(workdir, "ready.json")
    cfg = os.path.join(workdir, "config.json")
    log_path = os.path.join(workdir, "broker.log")
    with open(cfg, "w") as f:
        json.dump({"storage": {"durability": a.durability},
                   "mqtt": {"max_queued_messages": 100000, "sys_interval": 0}}, f)
    log = open(log_path, "ab")
    broker = subprocess.Popen([a.shardmq, "serve", "--config", cfg, "--mqtt", "127.0.0.1:0",
                               "--admin", "127.0.0.1:0", "--data-dir", data_dir,
                               "--ready-file", ready], stdout=log, stderr=subprocess.STDOUT)
    procs = []
    stop = multiprocessing.Event()
    status = 2
    try:
        deadline = time.monotonic() + 60
        while not os.path.exists(ready):
            if broker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("broker did not start (exit %s), see %s" % (broker.poll(),
                                                                               log_path))
            time.sleep(0.02)
        received = multiprocessing.Value("q", 0)
        published = multiprocessing.Value("q", 0)
        errors = multiprocessing.Value("q", 0)
        for i in range(a.subscribers):
            procs.append(multiprocessing.Process(
                target=subscriber, args=(i, ready, stop, received, errors), daemon=True))
        for pr in procs:
            pr.start()
        time.sleep(1.0)  # subscribers connected and subscribed before the load starts
        pubs = [multiprocessing.Process(
            target=publisher,
            args=(i, ready, stop, a.rate / a.publishers, a.topics, a.payload, a.retain_every,
                  a.window, published, errors), daemon=True) for i in range(a.publishers)]
        for pr in pubs:
            pr.start()
        procs += pubs

        print("shardmq disk usage: %d subscribers, %d publishers, %.0f msg/s of %d B over %d "
              "topics, %.1f min, durability %s, data dir %s" % (
                  a.subscribers, a.publishers, a.rate, a.payload, a.topics, a.minutes,
                  a.durability, data_dir), flush=True)
        print("%7s %10s %10s %10s %6s %11s %11s" % ("t s", "total MB", "wal MB", "sst MB",
                                                    "files", "published", "received"))
        samples = []
        t0 = time.monotonic()
        end = t0 + a.minutes * 60
        next_sample = t0 + a.sample
        while time.monotonic() < end:
            time.sleep(max(0.0, min(next_sample, end) - time.monotonic()))
            if broker.poll() is not None:
                raise RuntimeError("broker exited with %s, see %s" % (broker.returncode,
                                                                      log_path))
            if time.monotonic() < next_sample:
                continue
            next_sample += a.sample
            total, wal, sst, files = dir_sizes(data_dir)
            t = time.monotonic() - t0
            samples.append((t, total))
            print("%7.0f %10.2f %10.2f %10.2f %6d %11d %11d" % (
                t, total / 1e6, wal / 1e6, sst / 1e6, files, published.value, received.value),
                flush=True)
        stop.set()
        for pr in procs:
            pr.join(20)
        alive = [pr.pid for pr in procs if pr.is_alive()]
        for pr in procs:
            if pr.is_alive():
                pr.terminate()
                pr.join(5)

        sizes = [s for _, s in samples]
        third = max(1, len(sizes) // 3)
        first, last = sum(sizes[:third]) / third, sum(sizes[-third:]) / third
        should = published.value * a.subscribers
        print()
        print("samples %d: min %.2f MB, max %.2f MB, final %.2f MB; first third avg %.2f MB, "
              "last third avg %.2f MB (x%.2f)" % (
                  len(sizes), min(sizes) / 1e6, max(sizes) / 1e6, sizes[-1] / 1e6, first / 1e6,
                  last / 1e6, last / first if first else float("inf")))
        print("published %d (acknowledged), received %d of %d expected, client errors %d%s" % (
            published.value, received.value, should, errors.value,
            ", stuck client processes %s" % alive if alive else ""))
        if errors.value or (should and received.value < (1 - a.lag_limit) * should):
            print("RUN FAILED: client errors or subscribers far behind")
            status = 2
        elif last > a.growth * first:
            print("GROWING: the data directory keeps growing under a steady load")
            status = 1
        else:
            print("bounded")
            status = 0
    except RuntimeError as e:
        print("RUN FAILED: %s" % e)
        status = 2
    finally:
        stop.set()
        for pr in procs:
            if pr.is_alive():
                pr.terminate()
        if broker.poll() is None:
            broker.send_signal(signal.SIGTERM)
            try:
                broker.wait(30)
            except subprocess.TimeoutExpired:
                broker.kill()
                broker.wait()
        if os.path.isdir(data_dir):
            print("after shutdown (exit %s): %.2f MB" % (broker.returncode,
                                                          dir_sizes(data_dir)[0] / 1e6))
            if status in (0, 1):
                # What that directory costs at the next start (WAL replay, compaction).
                if os.path.exists(ready):
                    os.unlink(ready)
                t0 = time.monotonic()
                again = subprocess.Popen(
                    [a.shardmq, "serve", "--config", cfg, "--mqtt", "127.0.0.1:0", "--admin",
                     "127.0.0.1:0", "--data-dir", data_dir, "--ready-file", ready],
                    stdout=log, stderr=subprocess.STDOUT)
                while (not os.path.exists(ready) and again.poll() is None and
                       time.monotonic() - t0 < 300):
                    time.sleep(0.02)
                took = time.monotonic() - t0
                ok = os.path.exists(ready)
                again.send_signal(signal.SIGTERM)
                try:
                    again.wait(30)
                except subprocess.TimeoutExpired:
                    again.kill()
                    again.wait()
                print("restart on it: %s after %.2f s; then %.2f MB" % (
                    "ready" if ok else "NOT ready", took, dir_sizes(data_dir)[0] / 1e6))
        log.close()
        if a.keep or status == 2:
            print("kept %s" % workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
