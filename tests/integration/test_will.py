"""Will messages: when they are published (abnormal loss, keepalive timeout, protocol error,
v5 DISCONNECT 0x04, takeover) and when not (normal DISCONNECT, cancelled will delay); will QoS,
retain, delay and properties."""
import os
import select
import signal
import subprocess
import time

from conftest import TIMEOUT, Client, PacketTypes, mosquitto_version_flag, props
import rawmqtt as R
from rawmqtt import RawClient


def watcher(broker, topic="will/#", cid="will-watcher"):
    """v5 raw subscriber at QoS 2 (so the delivered QoS equals the will QoS)."""
    w = R.connected(broker.port, 5, cid)
    assert w.subscribe([(topic, 2)]).rcs == [2]
    return w


def will_client(broker, version, cid, will, keepalive=60, expiry=None):
    """Raw client with a will: will = dict(topic, payload, qos, retain, props)."""
    c = RawClient(broker.port, version)
    p = {"SessionExpiryInterval": expiry} if version == "5" and expiry is not None else None
    ack = c.connect(cid, keepalive=keepalive, will=will, props=p)
    assert ack.rc == 0, ack
    return c


def expect_will(w, payload, timeout=TIMEOUT):
    got = w.collect_publishes(1, timeout)[0]
    assert got.payload == payload, got
    return got


def assert_no_will(w, wait):
    pubs = [p for p in w.recv_all(wait) if p.type == R.PUBLISH]
    assert pubs == [], "unexpected will: %r" % pubs


# ------------------------------------------------------------------ when the will is published
def test_will_on_abnormal_loss_paho(broker, version):
    w = watcher(broker)
    c = Client(broker, version, "will-paho")
    c.connect(will={"topic": "will/paho", "payload": b"paho-gone", "qos": 1})
    c.drop()
    got = expect_will(w, b"paho-gone")
    assert got.topic == "will/paho" and got.qos == 1 and not got.retain


def test_will_on_abnormal_loss_raw(broker, version):
    w = watcher(broker)
    c = will_client(broker, version, "will-raw", {"topic": "will/raw", "payload": b"raw-gone"})
    c.shutdown()
    got = expect_will(w, b"raw-gone")
    assert got.qos == 0 and not got.retain


def test_will_on_keepalive_timeout(broker, version):
    w = watcher(broker)
    start = time.time()
    c = will_client(broker, version, "will-ka", {"topic": "will/ka", "payload": b"ka-expired"},
                    keepalive=1)
    expect_will(w, b"ka-expired", timeout=6)
    elapsed = time.time() - start
    assert elapsed >= 1.0, "will published %.2fs after connect, before the keepalive ran out" % (
        elapsed)
    c.close()


def test_will_on_protocol_error(broker, version):
    w = watcher(broker)
    c = will_client(broker, version, "will-perr", {"topic": "will/perr", "payload": b"bad-client"})
    c.send(b"\x36\x05\x00\x01ab\x00")   # PUBLISH with QoS 3: malformed
    assert c.wait_closed()
    expect_will(w, b"bad-client")


def test_will_on_second_connect(broker, version):
    w = watcher(broker)
    c = will_client(broker, version, "will-2conn", {"topic": "will/2c", "payload": b"twice"})
    c.send(R.connect_packet("will-2conn", R._norm_version(version)))  # protocol error
    assert c.wait_closed()
    expect_will(w, b"twice")


def test_v5_disconnect_with_will_message(broker):
    w = watcher(broker)
    c = will_client(broker, "5", "will-0x04", {"topic": "will/04", "payload": b"asked-for"})
    c.disconnect(R.RC_DISCONNECT_WITH_WILL)
    expect_will(w, b"asked-for")


def test_will_published_on_takeover(broker, version):
    w = watcher(broker)
    will_client(broker, version, "will-take", {"topic": "will/take", "payload": b"taken"})
    R.connected(broker.port, version, "will-take")
    expect_will(w, b"taken")


class _Lines:
    """Non-blocking line reader on a subprocess's stdout."""

    def __init__(self, proc):
        self.proc, self.buf, self.lines = proc, b"", []

    def poll(self, timeout):
        r, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if r:
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            self.buf += chunk
            *done, self.buf = self.buf.split(b"\n")
            self.lines += done
        return self.lines


def test_will_with_mosquitto_clients(broker, version):
    """mosquitto_sub with --will-topic is SIGKILLed (socket closed without DISCONNECT); another
    mosquitto_sub receives the will."""
    base = ["-h", "127.0.0.1", "-p", str(broker.port), "-V", mosquitto_version_flag(version)]
    recv = subprocess.Popen(["mosquitto_sub"] + base + ["-v", "-q", "1", "-t", "will/mosq",
                                                        "-t", "mosq/ping"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    dying = subprocess.Popen(["mosquitto_sub"] + base + ["-t", "mosq/ping", "-i", "mosq-dying",
                                                         "--will-topic", "will/mosq",
                                                         "--will-payload", "mosquitto-died",
                                                         "--will-qos", "1"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        recv_lines, dying_lines = _Lines(recv), _Lines(dying)
        pinger = R.connected(broker.port, 5, "mosq-pinger")
        deadline = time.time() + TIMEOUT
        while not (recv_lines.lines and dying_lines.lines):   # both connected and subscribed
            assert time.time() < deadline, "mosquitto_sub clients never got a message"
            pinger.publish_qos("mosq/ping", b"ping", qos=0)
            recv_lines.poll(0.1)
            dying_lines.poll(0.1)
        dying.send_signal(signal.SIGKILL)
        dying.wait(TIMEOUT)
        while b"will/mosq mosquitto-died" not in recv_lines.lines:
            assert time.time() < deadline + TIMEOUT, "no will: %r" % recv_lines.lines
            recv_lines.poll(0.2)
    finally:
        for p in (recv, dying):
            if p.poll() is None:
                p.kill()
                p.wait()


# ------------------------------------------------------------------ when it is not
def test_no_will_on_normal_disconnect(broker, version):
    w = watcher(broker)
    c = Client(broker, version, "will-normal")
    c.connect(will={"topic": "will/normal", "payload": b"should-not-appear"})
    c.disconnect()
    raw = will_client(broker, version, "will-normal-raw",
                      {"topic": "will/normal", "payload": b"raw-should-not-appear"})
    if version == "5":
        raw.disconnect(0x00)
    else:
        raw.disconnect()
    assert_no_will(w, 1.0)


def test_will_is_sent_only_once(broker, version):
    """After a will is published for a lost connection, reconnecting and disconnecting normally
    does not publish it again."""
    w = watcher(broker)
    c = will_client(broker, version, "will-once", {"topic": "will/once", "payload": b"once"})
    c.shutdown()
    expect_will(w, b"once")
    c = R.connected(broker.port, version, "will-once")
    c.disconnect()
    assert_no_will(w, 0.7)


# ------------------------------------------------------------------ QoS, retain, properties
def test_will_qos_honoured(broker, version):
    w = watcher(broker)
    for qos in (0, 1, 2):
        c = will_client(broker, version, "will-q%d" % qos,
                        {"topic": "will/q%d" % qos, "payload": b"q%d" % qos, "qos": qos})
        c.shutdown()
        got = expect_will(w, b"q%d" % qos)
        assert got.qos == qos, got
    # The subscription maximum still caps it.
    w0 = R.connected(broker.port, 5, "will-w0")
    w0.subscribe([("will0/#", 0)])
    c = will_client(broker, version, "will-q2b", {"topic": "will0/x", "payload": b"x", "qos": 2})
    c.shutdown()
    assert w0.collect_publishes(1)[0].qos == 0


def test_will_retain(broker, version):
    w = watcher(broker)
    c = will_client(broker, version, "will-ret",
                    {"topic": "will/ret", "payload": b"last-words", "qos": 1, "retain": True})
    c.shutdown()
    live = expect_will(w, b"last-words")
    assert live.retain is False, "live delivery to an existing subscriber has retain 0"
    later = R.connected(broker.port, version, "will-late")
    later.subscribe([("will/ret", 1)])
    got = later.collect_publishes(1)[0]
    assert got.payload == b"last-words" and got.retain is True


def test_will_not_retained_without_flag(broker, version):
    w = watcher(broker)
    c = will_client(broker, version, "will-noret", {"topic": "will/noret", "payload": b"x"})
    c.shutdown()
    expect_will(w, b"x")
    later = R.connected(broker.port, version, "will-late2")
    later.subscribe([("will/noret", 1)])
    assert later.try_recv(0.5) is None


def test_v5_will_properties_delivered(broker):
    w = watcher(broker)
    will_props = [("PayloadFormatIndicator", 1), ("MessageExpiryInterval", 30),
                  ("ContentType", "text/plain"), ("ResponseTopic", "will/reply"),
                  ("CorrelationData", b"\x00\x01corr"), ("UserProperty", ("a", "1")),
                  ("UserProperty", ("b", "2")), ("UserProperty", ("a", "3"))]
    c = will_client(broker, "5", "will-props",
                    {"topic": "will/props", "payload": "héllo".encode(), "qos": 1,
                     "props": will_props})
    c.shutdown()
    got = expect_will(w, "héllo".encode())
    p = got.props
    assert p.get("PayloadFormatIndicator") == 1
    assert p.get("ContentType") == "text/plain"
    assert p.get("ResponseTopic") == "will/reply"
    assert p.get("CorrelationData") == b"\x00\x01corr"
    assert p.all("UserProperty") == [("a", "1"), ("b", "2"), ("a", "3")], "order not kept"
    assert 28 <= p.get("MessageExpiryInterval", -1) <= 30, p
    assert "WillDelayInterval" not in p


def test_v5_will_properties_paho(broker):
    rx = Client(broker, "5", "will-props-rx")
    rx.connect()
    rx.subscribe("will/pp", qos=1)
    c = Client(broker, "5", "will-props-paho")
    wp = props(PacketTypes.WILLMESSAGE, ContentType="application/json",
               UserProperty=[("k", "v")], ResponseTopic="r/t", CorrelationData=b"cd")
    c.connect(will={"topic": "will/pp", "payload": b"{}", "qos": 1, "properties": wp})
    c.drop()
    m = rx.expect_message()
    assert m.payload == b"{}"
    assert m.properties.ContentType == "application/json"
    assert m.properties.UserProperty == [("k", "v")]
    assert m.properties.ResponseTopic == "r/t"
    assert m.properties.CorrelationData == b"cd"
    rx.close()


# ------------------------------------------------------------------ will delay (v5)
def _delayed_will(broker, cid, delay, expiry):
    return will_client(broker, "5", cid, {"topic": "will/" + cid, "payload": cid.encode(),
                                          "props": {"WillDelayInterval": delay}}, expiry=expiry)


def test_v5_will_delay(broker):
    w = watcher(broker)
    c = _delayed_will(broker, "wd", 2, 60)
    dropped = time.time()
    c.shutdown()
    expect_will(w, b"wd", timeout=6)
    elapsed = time.time() - dropped
    assert elapsed >= 1.7, "will published %.2fs after loss, before its 2 s delay" % elapsed


def test_v5_will_delay_cancelled_by_reconnect(broker):
    w = watcher(broker)
    c = _delayed_will(broker, "wdc", 2, 60)
    c.shutdown()
    time.sleep(0.5)
    again = R.connected(broker.port, 5, "wdc", clean=False, props={"SessionExpiryInterval": 60})
    assert_no_will(w, 2.5)
    assert again.ping().type == R.PINGRESP


def test_v5_will_delay_cancelled_by_takeover(broker):
    """A delayed will is not published when another connection takes over the session."""
    w = watcher(broker)
    _delayed_will(broker, "wdt", 2, 60)
    R.connected(broker.port, 5, "wdt", clean=False, props={"SessionExpiryInterval": 60})
    assert_no_will(w, 2.5)


def test_v5_will_sent_at_session_end_if_sooner_than_delay(broker):
    w = watcher(broker)
    c = _delayed_will(broker, "wds", 30, 1)   # session expires after 1 s, delay 30 s
    dropped = time.time()
    c.shutdown()
    expect_will(w, b"wds", timeout=5)
    assert time.time() - dropped >= 0.7


def test_v5_will_delay_zero_session_expiry(broker):
    """Session Expiry 0: the session ends at once, so a delayed will goes out immediately."""
    w = watcher(broker)
    c = _delayed_will(broker, "wd0", 30, None)
    dropped = time.time()
    c.shutdown()
    expect_will(w, b"wd0", timeout=3)
    assert time.time() - dropped < 2.5
