"""Interoperability with the Mosquitto command line clients (mosquitto_pub / mosquitto_sub 2.x),
MQTT 3.1.1 (-V mqttv311) and 5 (-V mqttv5): pub/sub, QoS 1/2, retained, v5 user properties."""
import queue
import subprocess
import threading
import time

import pytest

from conftest import Client, mosquitto_version_flag

FMT = "MSG|%t|%q|%r|%p"  # mosquitto_sub -F: topic, QoS, retain flag, payload


def common(broker, version):
    return ["-h", "127.0.0.1", "-p", str(broker.port), "-V", mosquitto_version_flag(version)]


def mpub(broker, version, *args, stdin=None):
    r = subprocess.run(["mosquitto_pub"] + common(broker, version) + list(args), input=stdin,
                       capture_output=True, timeout=15)
    assert r.returncode == 0, "mosquitto_pub %s failed (%d): %s" % (
        " ".join(args), r.returncode, (r.stdout + r.stderr).decode("utf-8", "replace"))


class MosquittoSub:
    """mosquitto_sub in the background with -d, so we know when the SUBACK arrived."""

    def __init__(self, broker, version, *args, fmt=FMT):
        self.lines = queue.Queue()
        self.proc = subprocess.Popen(
            # stdbuf: line-buffered stdout, so the SUBACK debug line is seen at once.
            ["stdbuf", "-oL", "mosquitto_sub", "-d", "-F", fmt] + common(broker, version) +
            list(args),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.all = []
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in iter(self.proc.stdout.readline, b""):
            self.lines.put(line.decode("utf-8", "replace").rstrip("\n"))
        self.lines.put(None)

    def _next(self, deadline):
        left = deadline - time.time()
        if left <= 0:
            return False
        try:
            line = self.lines.get(timeout=left)
        except queue.Empty:
            return False
        if line is not None:
            self.all.append(line)
        return line

    def wait_subscribed(self, timeout=10):
        deadline = time.time() + timeout
        while True:
            line = self._next(deadline)
            assert line is not False, "mosquitto_sub got no SUBACK:\n" + "\n".join(self.all)
            assert line is not None, "mosquitto_sub exited:\n" + "\n".join(self.all)
            if "received SUBACK" in line:
                return self

    def messages(self, timeout=10):
        """Wait for the process to exit (it has -C N) and return the MSG lines as tuples."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        deadline = time.time() + 2
        while True:
            line = self._next(deadline)
            if line is None or line is False:
                break
        msgs = [tuple(l.split("|")[1:]) for l in self.all if l.startswith("MSG|")]
        return msgs

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()


@pytest.fixture
def subs():
    made = []
    yield made
    for s in made:
        s.stop()


def msub(subs, broker, version, *args, **kw):
    s = MosquittoSub(broker, version, *args, **kw)
    subs.append(s)
    return s


def test_basic_pub_sub(broker, version, subs):
    s = msub(subs, broker, version, "-t", "mq/#", "-C", "2", "-W", "10").wait_subscribed()
    mpub(broker, version, "-t", "mq/a", "-m", "hello")
    mpub(broker, version, "-t", "mq/b/c", "-m", "world ✓")
    assert s.messages() == [("mq/a", "0", "0", "hello"), ("mq/b/c", "0", "0", "world ✓")]
    assert s.proc.returncode == 0


@pytest.mark.parametrize("pub_qos,sub_qos", [(1, 1), (2, 2), (2, 1), (1, 2), (1, 0)])
def test_qos(broker, version, subs, pub_qos, sub_qos):
    """mosquitto_pub exits 0 only after the QoS flow completes; the subscriber gets
    min(pub, sub) QoS."""
    s = msub(subs, broker, version, "-t", "mqq/t", "-q", str(sub_qos), "-C", "1",
             "-W", "10").wait_subscribed()
    mpub(broker, version, "-t", "mqq/t", "-m", "q", "-q", str(pub_qos))
    assert s.messages() == [("mqq/t", str(min(pub_qos, sub_qos)), "0", "q")]


def test_many_lines_in_order(broker, version, subs):
    n = 50
    s = msub(subs, broker, version, "-t", "mql/t", "-q", "1", "-C", str(n),
             "-W", "10").wait_subscribed()
    mpub(broker, version, "-t", "mql/t", "-q", "1", "-l",
         stdin="".join("line %d\n" % i for i in range(n)).encode())
    assert [m[3] for m in s.messages()] == ["line %d" % i for i in range(n)]


def test_retained(broker, version, subs):
    mpub(broker, version, "-t", "mqr/t", "-m", "kept", "-r", "-q", "1")
    s = msub(subs, broker, version, "-t", "mqr/#", "-C", "1", "-W", "5")
    assert s.messages() == [("mqr/t", "0", "1", "kept")]
    mpub(broker, version, "-t", "mqr/t", "-m", "newer", "-r", "-q", "2")
    s = msub(subs, broker, version, "-t", "mqr/#", "-q", "2", "-C", "1", "-W", "5")
    assert s.messages() == [("mqr/t", "2", "1", "newer")]
    mpub(broker, version, "-t", "mqr/t", "-n", "-r")  # clear
    time.sleep(0.2)
    s = msub(subs, broker, version, "-t", "mqr/#", "-C", "1", "-W", "1")
    assert s.messages(timeout=5) == []


def test_v5_user_property_from_mosquitto_pub(broker, subs):
    sub = Client(broker, "5", "paho-sub")
    try:
        sub.connect()
        sub.subscribe("mqp/t", qos=1)
        mpub(broker, "5", "-t", "mqp/t", "-m", "p", "-q", "1",
             "-D", "publish", "user-property", "k", "v",
             "-D", "publish", "user-property", "k2", "v 2",
             "-D", "publish", "user-property", "k", "again",
             "-D", "publish", "content-type", "text/plain")
        m = sub.expect_message()
        assert (m.topic, m.payload) == ("mqp/t", b"p")
        assert m.properties.UserProperty == [("k", "v"), ("k2", "v 2"), ("k", "again")]
        assert m.properties.ContentType == "text/plain"
    finally:
        sub.c.disconnect()
        sub.c.loop_stop()


def test_v5_user_property_to_mosquitto_sub(broker, subs):
    s = msub(subs, broker, "5", "-t", "mqs/t", "-C", "1", "-W", "10",
             fmt="MSG|%t|%P|%C|%p").wait_subscribed()
    mpub(broker, "5", "-t", "mqs/t", "-m", "x", "-D", "publish", "user-property", "a", "1",
         "-D", "publish", "user-property", "b", "2", "-D", "publish", "content-type", "c/t")
    assert s.messages() == [("mqs/t", "a:1 b:2", "c/t", "x")]
