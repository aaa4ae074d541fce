"""Integration test harness: real shardmq processes on 127.0.0.1 with ephemeral ports.

Run under Debian's /usr/bin/python3 (python3-paho-mqtt, python3-pytest).

* `BrokerProcess` starts `shardmq serve` with --mqtt/--admin on port 0 and --ready-file, waits
  for the ready file (written atomically by the broker once listening) and reads the bound ports.
  Logs stay in the test's tmp directory; teardown is SIGTERM, then SIGKILL.
* `broker` fixture: one broker with the default config per test.
* `broker_factory(config=dict, extra_args=[...])`: brokers with a custom JSON config.
* `BrokerProcess.restart(how="stop"|"kill")`: SIGTERM or SIGKILL, then start again on the same
  data dir (new ports); `metrics()` / `metric(name, **labels)` read /metrics.
* `version` fixture: parametrizes a test over MQTT "3.1.1" and "5".
* `Client`: a thin synchronous wrapper around paho (v3.1.1 or v5) that records everything.
* Cluster: `etcd` fixture (a real etcd on free loopback ports, `EtcdProcess`), `cluster_node(id,
  role=...)` (a broker joined to it), `ctl_status(etcd)` (`shardmq ctl status --json`).
"""
import json
import os
import queue
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.request

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARDMQ = os.environ.get("SHARDMQ_BIN", os.path.join(REPO, "build", "broker", "shardmq"))
TIMEOUT = 10.0


class BrokerProcess:
    def __init__(self, workdir, config=None, extra_args=None, name="broker"):
        self.workdir = str(workdir)
        self.name = name
        # Two network workers unless a test says otherwise: the broker's default (one per CPU
        # but one) is a single worker on a 2-CPU machine, and the tests must exercise the
        # paths between workers on any machine.
        self.config = dict(config or {})
        self.config.setdefault("workers", 2)
        self.extra_args = list(extra_args or [])
        self.proc = None
        self.ports = {}
        self.data_dir = os.path.join(self.workdir, name + "-data")
        self.log_path = os.path.join(self.workdir, name + ".log")

    @property
    def port(self):
        return self.ports["mqtt"]

    @property
    def admin_port(self):
        return self.ports["admin"]

    def start(self, timeout=20.0):
        cfg_path = os.path.join(self.workdir, self.name + ".json")
        with open(cfg_path, "w") as f:
            json.dump(self.config, f)
        ready = os.path.join(self.workdir, self.name + ".ready.json")
        if os.path.exists(ready):
            os.unlink(ready)
        args = [SHARDMQ, "serve", "--config", cfg_path, "--mqtt", "127.0.0.1:0",
                "--admin", "127.0.0.1:0", "--data-dir", self.data_dir,
                "--ready-file", ready] + self.extra_args
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("broker exited with %s:\n%s" % (self.proc.returncode, self.log_tail()))
            if os.path.exists(ready):
                with open(ready) as f:
                    self.ports = json.load(f)
                return self
            time.sleep(0.02)
        raise RuntimeError("broker did not become ready:\n" + self.log_tail())

    def log_tail(self, n=60):
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-n:]).decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self, timeout=10.0):
        """SIGTERM, then SIGKILL. Returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def restart(self, how="stop"):
        """Restarts on the same data dir. how: "stop" (SIGTERM; asserts exit code 0) or "kill"
        (SIGKILL). The new process listens on new ephemeral ports (self.port changes)."""
        if how == "kill":
            self.kill()
        else:
            rc = self.stop()
            assert rc in (0, None), "exit code %r on SIGTERM:\n%s" % (rc, self.log_tail())
        return self.start()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def metrics(self):
        """GET /metrics parsed: {(name, ((label, value), ...)): float}, labels sorted."""
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.admin_port,
                                    timeout=TIMEOUT) as r:
            text = r.read().decode("utf-8")
        out = {}
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)', line)
            if not m:
                continue
            labels = tuple(sorted(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"',
                                             m.group(2) or "")))
            out[(m.group(1), labels)] = float(m.group(3))
        return out

    def metric(self, name, **labels):
        """One sample of /metrics (0.0 if absent)."""
        return self.metrics().get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def broker_factory(tmp_path, request):
    started = []

    def make(config=None, extra_args=None, name=None):
        b = BrokerProcess(tmp_path, config, extra_args, name or "broker%d" % len(started))
        started.append(b)
        return b.start()

    yield make
    for b in started:
        crashed = b.proc is not None and b.proc.poll() is not None and b.proc.returncode not in (0, -9, -15)
        b.stop()
        if crashed or (hasattr(request.node, "rep_call") and request.node.rep_call.failed):
            print("---- %s log ----\n%s" % (b.name, b.log_tail()))
        assert not crashed, "broker crashed with %s" % b.proc.returncode


@pytest.fixture
def broker(broker_factory):
    return broker_factory()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EtcdProcess:
    """A real etcd (Debian etcd-server) with one member on free loopback ports; its data and log
    in the test's tmp directory. kill()/start() keep the ports and the data."""

    BINARY = "/usr/bin/etcd"

    def __init__(self, workdir):
        self.workdir = str(workdir)
        self.proc = None
        self.client_port = free_port()
        self.peer_port = free_port()

    @property
    def endpoint(self):
        return "127.0.0.1:%d" % self.client_port

    def start(self, timeout=20.0):
        client = "http://" + self.endpoint
        peer = "http://127.0.0.1:%d" % self.peer_port
        args = [self.BINARY, "--name", "test", "--data-dir", os.path.join(self.workdir, "etcd"),
                "--listen-client-urls", client, "--advertise-client-urls", client,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", "test=" + peer,
                "--heartbeat-interval", "20", "--election-timeout", "200",
                "--logger", "zap", "--log-level", "error",
                "--log-outputs", os.path.join(self.workdir, "etcd.log")]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("etcd exited with %s" % self.proc.returncode)
            try:
                with socket.create_connection(("127.0.0.1", self.client_port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("etcd did not listen")

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def etcd(tmp_path):
    e = EtcdProcess(tmp_path).start()
    yield e
    e.stop()


@pytest.fixture
def cluster_node(broker_factory, etcd):
    """cluster_node(node_id, role="all", config=None, lease_ttl=2): a broker joined to the test's
    etcd with its gRPC port on 127.0.0.1:0. Short leases keep failure tests quick."""

    def make(node_id, role="all", config=None, lease_ttl=2, extra_args=None):
        cfg = dict(config or {})
        cluster = dict(cfg.get("cluster", {}))
        cluster.setdefault("lease_ttl", lease_ttl)
        cfg["cluster"] = cluster
        args = ["--node-id", node_id, "--role", role, "--cluster-addr", "127.0.0.1:0",
                "--etcd", "http://" + etcd.endpoint] + list(extra_args or [])
        return broker_factory(cfg, args, name=node_id)

    return make


def ctl_status(etcd, prefix=None):
    """`shardmq ctl status --json` parsed."""
    args = [SHARDMQ, "ctl", "status", "--etcd", etcd.endpoint, "--json"]
    if prefix:
        args += ["--prefix", prefix]
    out = subprocess.run(args, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture(params=["3.1.1", "5"])
def version(request):
    return request.param


def mosquitto_version_flag(version):
    """mosquitto_pub/sub -V value."""
    return {"3.1": "mqttv31", "3.1.1": "mqttv311", "5": "mqttv5"}[version]


class Client:
    """Synchronous paho wrapper. Every callback is recorded in a queue.

    c = Client(broker, "5", "cid"); c.connect(clean_start=True)
    c.subscribe("a/#", qos=1); c.publish("a/b", b"x", qos=1); m = c.expect_message()
    """

    def __init__(self, broker, version, client_id="", clean_session=True, userdata=None,
                 host="127.0.0.1", port=None):
        self.version = version
        self.v5 = version == "5"
        self.host = host
        self.port = port if port is not None else broker.port
        proto = {"3.1": mqtt.MQTTv31, "3.1.1": mqtt.MQTTv311, "5": mqtt.MQTTv5}[version]
        if self.v5:
            self.c = mqtt.Client(client_id=client_id, protocol=proto)
        else:
            self.c = mqtt.Client(client_id=client_id, clean_session=clean_session, protocol=proto)
        self.messages = queue.Queue()
        self.events = queue.Queue()
        self.connack = None
        self.disconnected = threading.Event()
        self.disconnect_rc = None
        self.disconnect_props = None
        self.c.on_connect = self._on_connect
        self.c.on_message = self._on_message
        self.c.on_subscribe = self._on_subscribe
        self.c.on_unsubscribe = self._on_unsubscribe
        self.c.on_publish = self._on_publish
        self.c.on_disconnect = self._on_disconnect
        self._connected = threading.Event()
        self._acked = {}
        self._ack_cv = threading.Condition()

    # ---- callbacks
    def _on_connect(self, c, u, flags, rc, props=None):
        self.connack = {"flags": flags, "rc": rc, "props": props,
                        "session_present": bool(flags.get("session present"))}
        self._connected.set()

    def _on_message(self, c, u, msg):
        self.messages.put(msg)

    def _on_subscribe(self, c, u, mid, granted, props=None):
        self.events.put(("suback", mid, granted, props))

    def _on_unsubscribe(self, c, u, mid, props=None, rcs=None):
        self.events.put(("unsuback", mid, rcs, props))

    def _on_publish(self, c, u, mid):
        with self._ack_cv:
            self._acked[mid] = True
            self._ack_cv.notify_all()

    def _on_disconnect(self, c, u, rc, props=None):
        self.disconnect_rc = rc
        self.disconnect_props = props
        self.disconnected.set()

    # ---- actions
    def connect(self, clean_start=True, keepalive=60, properties=None, will=None, username=None,
                password=None, expect_rc=0, timeout=TIMEOUT):
        """will: dict(topic, payload, qos, retain, properties). Returns the connack dict."""
        if will:
            self.c.will_set(will["topic"], will.get("payload"), will.get("qos", 0),
                            will.get("retain", False), properties=will.get("properties"))
        if username is not None:
            self.c.username_pw_set(username, password)
        if self.v5:
            self.c.connect(self.host, self.port, keepalive, clean_start=clean_start,
                           properties=properties)
        else:
            self.c.connect(self.host, self.port, keepalive)
        self.c.loop_start()
        assert self._connected.wait(timeout), "no CONNACK"
        if expect_rc is not None:
            rc = self.connack["rc"]
            rc_val = rc.value if hasattr(rc, "value") else rc
            assert rc_val == expect_rc, "CONNACK rc %r" % rc
        return self.connack

    def subscribe(self, topic, qos=0, options=None, properties=None, timeout=TIMEOUT):
        """Returns the granted list (ints for 3.1.1, ReasonCodes for v5)."""
        if self.v5:
            opts = options or SubscribeOptions(qos=qos)
            rc, mid = self.c.subscribe(topic, options=opts, properties=properties)
        else:
            rc, mid = self.c.subscribe(topic, qos)
        assert rc == 0
        ev = self.wait_event("suback", timeout)
        assert ev[1] == mid
        return ev[2]

    def unsubscribe(self, topic, properties=None, timeout=TIMEOUT):
        if self.v5:
            rc, mid = self.c.unsubscribe(topic, properties=properties)
        else:
            rc, mid = self.c.unsubscribe(topic)
        assert rc == 0
        return self.wait_event("unsuback", timeout)

    def wait_event(self, kind, timeout=TIMEOUT):
        deadline = time.time() + timeout
        while True:
            left = deadline - time.time()
            assert left > 0, "no %s" % kind
            ev = self.events.get(timeout=left)
            if ev[0] == kind:
                return ev

    def publish(self, topic, payload, qos=0, retain=False, properties=None, wait=True,
                timeout=TIMEOUT):
        info = self.c.publish(topic, payload, qos, retain, properties=properties) if self.v5 \
            else self.c.publish(topic, payload, qos, retain)
        if wait and qos > 0:
            self.wait_acked(info.mid, timeout)
        return info

    def wait_acked(self, mid, timeout=TIMEOUT):
        with self._ack_cv:
            ok = self._ack_cv.wait_for(lambda: mid in self._acked, timeout)
        assert ok, "publish %d not acknowledged" % mid

    def expect_message(self, timeout=TIMEOUT):
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no message within %.1fs" % timeout)

    def expect_messages(self, n, timeout=TIMEOUT):
        deadline = time.time() + timeout
        out = []
        while len(out) < n:
            left = deadline - time.time()
            if left <= 0:
                raise AssertionError("got %d of %d messages" % (len(out), n))
            try:
                out.append(self.messages.get(timeout=left))
            except queue.Empty:
                pass
        return out

    def expect_no_message(self, wait=0.5):
        try:
            m = self.messages.get(timeout=wait)
        except queue.Empty:
            return
        raise AssertionError("unexpected message on %s: %r" % (m.topic, m.payload))

    def disconnect(self, reason=None, properties=None):
        if self.v5 and reason is not None:
            from paho.mqtt.reasoncodes import ReasonCodes
            self.c.disconnect(reasoncode=ReasonCodes(PacketTypes.DISCONNECT, identifier=reason),
                              properties=properties)
        else:
            self.c.disconnect()
        self.disconnected.wait(TIMEOUT)
        self.c.loop_stop()

    def drop(self):
        """Abnormal loss: close the TCP socket without DISCONNECT."""
        self.c.loop_stop()
        sock = self.c.socket()
        if sock:
            sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self):
        try:
            self.c.loop_stop()
            self.c.disconnect()
        except Exception:
            pass


def props(packet_type, **kw):
    """props(PacketTypes.PUBLISH, MessageExpiryInterval=5, UserProperty=[("a","b")])"""
    p = Properties(packet_type)
    for k, v in kw.items():
        setattr(p, k, v)
    return p
