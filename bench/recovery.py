#!/usr/bin/python3
"""Recovery time of a broker holding many persistent sessions and queued messages.

Per variant (SIGTERM, SIGKILL), on a fresh temporary data directory:
  1. start shardmq (--config, --data-dir, --ready-file, ports 0);
  2. create --sessions persistent sessions (MQTT 3.1.1, clean session 0), each subscribed at QoS 1
     to one shared topic, then disconnect them (several processes, pipelined CONNECT+SUBSCRIBE);
  3. publish --messages QoS 1 messages to that topic: every session queues all of them
     (sessions x messages queue entries; default 10,000 x 100 = 1,000,000);
  4. stop the broker with SIGTERM or SIGKILL;
  5. restart it on the same data directory and time: process start -> ready file, then for a few
     sample sessions: ready -> CONNACK, -> first queued PUBLISH, -> all queued messages.
Prints one table row per variant.

Usage: /usr/bin/python3 bench/recovery.py [--sessions 10000] [--messages 100] [--variants term,kill]
Everything runs on 127.0.0.1 with ephemeral ports; at most --procs x --batch client connections
are open at once (default 4 x 250 = 1,000, well below a 20,000 open-file limit).
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
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
import rawmqtt as R  # noqa: E402

TOPIC = "bench/recovery/all"


def cid(i):
    return "bench-rec-%05d" % i


class Broker:
    def __init__(self, binary, workdir, config):
        self.binary = binary
        self.workdir = workdir
        self.data_dir = os.path.join(workdir, "data")
        self.cfg_path = os.path.join(workdir, "config.json")
        self.ready = os.path.join(workdir, "ready.json")
        self.log_path = os.path.join(workdir, "broker.log")
        with open(self.cfg_path, "w") as f:
            json.dump(config, f)
        self.proc = None
        self.ports = {}

    def start(self, timeout):
        """Starts the broker; returns seconds until the ready file appeared."""
        if os.path.exists(self.ready):
            os.unlink(self.ready)
        log = open(self.log_path, "ab")
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--config", self.cfg_path, "--mqtt", "127.0.0.1:0",
             "--admin", "127.0.0.1:0", "--data-dir", self.data_dir, "--ready-file", self.ready],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("broker exited with %s:\n%s" % (self.proc.returncode,
                                                                   self.log_tail()))
            if os.path.exists(self.ready):
                took = time.monotonic() - t0
                with open(self.ready) as f:
                    self.ports = json.load(f)
                return took
            time.sleep(0.005)
        self.kill()
        raise RuntimeError("broker not ready within %.0fs:\n%s" % (timeout, self.log_tail()))

    @property
    def port(self):
        return self.ports["mqtt"]

    def stop(self, how, timeout):
        """SIGTERM (waits for exit) or SIGKILL. Returns (seconds, exit code)."""
        t0 = time.monotonic()
        if how == "kill":
            self.proc.kill()
        else:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
            print("  SIGTERM did not stop the broker within %.0fs: killed" % timeout)
        return time.monotonic() - t0, rc

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def rss_mb(self):
        try:
            with open("/proc/%d/status" % self.proc.pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) / 1024.0
        except OSError:
            pass
        return float("nan")

    def metric(self, name, **labels):
        url = "http://127.0.0.1:%d/metrics" % self.ports["admin"]
        with urllib.request.urlopen(url, timeout=10) as r:
            text = r.read().decode()
        want = name + ("{" + ",".join('%s="%s"' % kv for kv in sorted(labels.items())) + "}"
                       if labels else "")
        for line in text.splitlines():
            if line.startswith(want + " "):
                return float(line.split()[-1])
        return 0.0

    def log_tail(self, n=30):
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-n:]).decode("utf-8", "replace")
        except OSError:
            return ""

    def log_lines(self, needle):
        with open(self.log_path, "rb") as f:
            return [l.decode("utf-8", "replace") for l in f.read().splitlines()
                    if needle.encode() in l]


def dir_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total


# ------------------------------------------------------------------ session creation (workers)
def create_sessions(args):
    """Worker process: creates sessions [lo, hi) in batches of `batch` open connections."""
    port, lo, hi, batch, timeout = args
    deadline = time.monotonic() + timeout
    sub = R.subscribe_packet(1, [(TOPIC, 1)], version=4)
    bye = R.disconnect_packet(version=4)
    for start in range(lo, hi, batch):
        if time.monotonic() > deadline:
            return "timed out at session %d" % start
        clients = []
        try:
            for i in range(start, min(start + batch, hi)):
                c = R.RawClient(port, 4, timeout=30)
                # Pipelined: SUBSCRIBE right behind CONNECT, no wait for CONNACK.
                c.send(R.connect_packet(cid(i), 4, clean=False, keepalive=0) + sub)
                clients.append((i, c))
            for i, c in clients:
                ack = c.expect(R.CONNACK)
                if ack.rc != 0:
                    return "session %d: CONNACK %r" % (i, ack)
                s = c.expect(R.SUBACK)
                if s.rcs != [1]:
                    return "session %d: SUBACK %r" % (i, s)
            for _, c in clients:
                c.send(bye)
        finally:
            for _, c in clients:
                c.close()
    return None


def setup(broker, n_sessions, n_messages, payload, procs, batch, timeout):
    """Creates the sessions, then publishes. Returns (session seconds, publish seconds)."""
    t0 = time.monotonic()
    per = (n_sessions + procs - 1) // procs
    jobs = [(broker.port, lo, min(lo + per, n_sessions), batch, timeout)
            for lo in range(0, n_sessions, per)]
    with multiprocessing.Pool(len(jobs)) as pool:
        errors = [e for e in pool.map(create_sessions, jobs) if e]
    if errors:
        raise RuntimeError("session setup failed: %s" % errors[:3])
    t_sessions = time.monotonic() - t0
    # Disconnects are processed asynchronously: wait until the broker shows no clients.
    wait_until(lambda: broker.metric("shardmq_broker_clients_connected") == 0, 60)

    t0 = time.monotonic()
    pub = R.RawClient(broker.port, 4, timeout=120)
    assert pub.connect("bench-rec-publisher", clean=True, keepalive=0).rc == 0
    body = (b"x" * payload)
    window, inflight, sent = 8, set(), 0
    deadline = time.monotonic() + timeout
    while sent < n_messages or inflight:
        if time.monotonic() > deadline:
            raise RuntimeError("publishing timed out: %d of %d sent, %d unacknowledged" % (
                sent, n_messages, len(inflight)))
        while sent < n_messages and len(inflight) < window:
            pid = sent % 60000 + 1
            pub.publish(TOPIC, b"%08d" % sent + body, qos=1, packet_id=pid)
            inflight.add(pid)
            sent += 1
        p = pub.expect(R.PUBACK, timeout=120)
        inflight.discard(p.packet_id)
    pub.disconnect()
    return t_sessions, time.monotonic() - t0


def wait_until(pred, timeout, step=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return False


def drain_sample(broker, i, n_messages, t_ready, timeout):
    """Connects session i; returns (present, s to CONNACK, s to first msg, s to all, count), all
    measured from t_ready."""
    c = R.RawClient(broker.port, 4, timeout=timeout)
    ack = c.connect(cid(i), clean=False, keepalive=0, timeout=timeout)
    t_connack = time.monotonic() - t_ready
    t_first = t_all = float("nan")
    got = 0
    deadline = time.monotonic() + timeout
    while got < n_messages and time.monotonic() < deadline:
        try:
            p = c.recv(max(0.01, deadline - time.monotonic()))
        except (R.Timeout, R.Closed):
            break
        if p.type == R.PUBLISH:
            if got == 0:
                t_first = time.monotonic() - t_ready
            got += 1
            if p.qos == 1:
                c.puback(p.packet_id)
    if got == n_messages:
        t_all = time.monotonic() - t_ready
    c.disconnect()
    return ack.session_present, t_connack, t_first, t_all, got


def run_variant(how, a):
    workdir = tempfile.mkdtemp(prefix="shardmq-recovery-", dir=a.tmp)
    config = {"workers": a.workers, "log_level": "info",
              "storage": {"durability": a.durability},
              "mqtt": {"max_queued_messages": max(1000, a.messages * 2), "v3_session_expiry": 0,
                       "sys_interval": 0}}
    broker = Broker(a.shardmq, workdir, config)
    row = {"variant": how}
    try:
        broker.start(a.timeout)
        print("[%s] creating %d sessions ..." % (how, a.sessions), flush=True)
        t_sess, t_pub = setup(broker, a.sessions, a.messages, a.payload, a.procs, a.batch,
                              a.timeout)
        row["sessions"] = a.sessions
        row["entries"] = a.sessions * a.messages
        row["setup_sessions_s"] = t_sess
        row["publish_s"] = t_pub
        row["dropped"] = broker.metric("shardmq_broker_messages_dropped_total",
                                       reason="queue_full")
        row["rss_before_mb"] = broker.rss_mb()
        print("[%s] %d sessions in %.1fs, %d messages (%d queue entries) in %.1fs; stopping" % (
            how, a.sessions, t_sess, a.messages, row["entries"], t_pub), flush=True)
        row["stop_s"], row["exit"] = broker.stop(how, a.timeout)
        row["data_mb"] = dir_bytes(broker.data_dir) / 1e6
        t_ready_s = broker.start(a.timeout)
        t_ready = time.monotonic()
        row["ready_s"] = t_ready_s
        row["rss_after_mb"] = broker.rss_mb()
        samples = sorted({0, a.sessions // 2, a.sessions - 1})
        results = [drain_sample(broker, i, a.messages, t_ready, a.timeout) for i in samples]
        row["present"] = all(r[0] for r in results)
        row["connack_s"] = results[0][1]
        row["first_msg_s"] = results[0][2]
        row["all_msgs_s"] = results[0][3]
        row["sample_counts"] = [r[4] for r in results]
        row["recovered_log"] = broker.log_lines("recovered ")[-1:] or ["?"]
        broker.stop("term", a.timeout)
    finally:
        broker.kill()
        if a.keep:
            print("[%s] kept %s" % (how, workdir))
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return row


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--shardmq", default=os.environ.get(
        "SHARDMQ_BIN", os.path.join(REPO, "build", "broker", "shardmq")))
    p.add_argument("--sessions", type=int, default=10000)
    p.add_argument("--messages", type=int, default=100, help="queued per session")
    p.add_argument("--payload", type=int, default=64, help="payload bytes (plus an 8-byte id)")
    p.add_argument("--variants", default="term,kill", help="comma list of term, kill")
    p.add_argument("--durability", default="wal", choices=["wal", "fsync"])
    p.add_argument("--workers", type=int, default=0, help="broker worker threads (0 = cores)")
    p.add_argument("--procs", type=int, default=4, help="processes creating sessions")
    p.add_argument("--batch", type=int, default=250, help="connections open per process")
    p.add_argument("--timeout", type=float, default=600, help="bound for every phase, s")
    p.add_argument("--tmp", default=None, help="parent of the temporary data directories")
    p.add_argument("--keep", action="store_true", help="keep the data directories")
    a = p.parse_args()
    if a.procs * a.batch > 15000:
        p.error("--procs x --batch must stay below the open-file limit (15,000 here)")
    variants = [v.strip() for v in a.variants.split(",") if v.strip()]
    for v in variants:
        if v not in ("term", "kill"):
            p.error("unknown variant %r" % v)

    rows = []
    for v in variants:
        try:
            rows.append(run_variant(v, a))
        except Exception as e:  # report and go on with the next variant
            print("[%s] FAILED: %s" % (v, e), flush=True)
            rows.append({"variant": v, "error": str(e)[:200]})

    print()
    print("shardmq recovery: %d sessions x %d queued QoS 1 messages (%d B), durability %s" % (
        a.sessions, a.messages, a.payload + 8, a.durability))
    cols = [("variant", "%-7s"), ("setup_sessions_s", "%8.1f"), ("publish_s", "%8.1f"),
            ("data_mb", "%8.1f"), ("stop_s", "%7.2f"), ("ready_s", "%8.2f"),
            ("connack_s", "%8.3f"), ("first_msg_s", "%8.3f"), ("all_msgs_s", "%8.3f"),
            ("rss_after_mb", "%8.0f"), ("present", "%7s")]
    heads = ["variant", "sess s", "pub s", "data MB", "stop s", "ready s", "connack", "1st msg",
             "all msg", "RSS MB", "present"]
    print(" ".join(h.rjust(8) if i else h.ljust(7) for i, h in enumerate(heads)))
    failed = False
    for r in rows:
        if "error" in r:
            print("%-7s error: %s" % (r["variant"], r["error"]))
            failed = True
            continue
        print(" ".join(fmt % r[k] for k, fmt in cols))
    print("(ready s: process start -> ready file; connack / 1st msg / all msg: seconds after "
          "ready for a sample session)")
    for r in rows:
        if "error" in r:
            continue
        print("%s: exit %s, queue_full drops %d, sample deliveries %s of %d, %s" % (
            r["variant"], r["exit"], r["dropped"], r["sample_counts"], a.messages,
            r["recovered_log"][0].split("] ", 1)[-1]))
        if not r["present"] or any(c != a.messages for c in r["sample_counts"]) or r["dropped"]:
            failed = True
            print("  ^ sessions or queued messages missing after the restart")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
