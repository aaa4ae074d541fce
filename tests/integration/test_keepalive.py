"""Keep Alive: enforcement at 1.5x, traffic and PINGREQ keep a connection alive, keepalive 0,
Server Keep Alive (v5) / cap (3.1.1) from mqtt.max_keepalive."""
import time

from conftest import Client
import rawmqtt as R
from rawmqtt import RawClient


def _closed_after(c, version, timeout):
    """Wait for the broker to close `c`; returns seconds waited. v5 gets DISCONNECT 0x8D first."""
    start = time.time()
    assert c.wait_closed(timeout), "connection not closed within %.1fs" % timeout
    waited = time.time() - start
    if version == "5":
        assert [p.type for p in c.before_close] == [R.DISCONNECT], c.before_close
        assert c.before_close[0].rc == R.RC_KEEPALIVE_TIMEOUT, c.before_close
    else:
        assert c.before_close == [], "3.1.1: the broker must just close: %r" % c.before_close
    return waited


def test_idle_client_disconnected_at_one_and_a_half_keepalive(broker, version):
    c = RawClient(broker.port, version)
    t0 = time.time()
    assert c.connect("ka-idle", keepalive=2).rc == 0
    _closed_after(c, version, 6)
    elapsed = time.time() - t0
    # [MQTT-3.1.2-24]: within one and a half times the Keep Alive (plus scheduling slack),
    # and not before the Keep Alive itself.
    assert 2.0 <= elapsed <= 3.0 + 1.2, "disconnected after %.2fs (keepalive 2 s)" % elapsed
    assert broker.alive()


def test_pingreq_keeps_connection_alive(broker, version):
    c = R.connected(broker.port, version, "ka-ping", keepalive=1)
    end = time.time() + 2.6
    while time.time() < end:
        time.sleep(0.5)
        assert c.ping().type == R.PINGRESP
    assert not c.is_closed(0.1)


def test_any_packet_keeps_connection_alive(broker, version):
    """Keep Alive counts any Control Packet, not only PINGREQ."""
    c = R.connected(broker.port, version, "ka-traffic", keepalive=1)
    end = time.time() + 2.6
    n = 0
    while time.time() < end:
        time.sleep(0.5)
        c.publish("ka/traffic", b"%d" % n, qos=1)
        assert c.expect(R.PUBACK).type == R.PUBACK
        n += 1
    assert c.ping().type == R.PINGRESP


def test_receiving_traffic_does_not_count(broker, version):
    """Only packets from the client reset its keepalive: a subscriber that receives messages
    but sends nothing is still disconnected."""
    c = R.connected(broker.port, version, "ka-rx", keepalive=1)
    c.subscribe([("ka/rx", 0)])
    feeder = R.connected(broker.port, 5, "ka-feeder")
    t0 = time.time()
    closed = False
    while time.time() - t0 < 5 and not closed:
        feeder.publish("ka/rx", b"tick")
        try:
            while True:
                c.recv(0.25)
        except R.Timeout:
            pass
        except R.Closed:
            closed = True
    assert closed, "client that only receives was not disconnected"
    assert time.time() - t0 <= 1.5 + 1.5


def test_paho_keepalive_pings_work(broker, version):
    """paho sends PINGREQ itself: it stays connected past several keepalive periods."""
    c = Client(broker, version, "ka-paho")
    c.connect(keepalive=1)
    time.sleep(2.6)
    assert not c.disconnected.is_set(), "paho client with working pings was disconnected"
    c.subscribe("ka/paho", qos=1)
    c.publish("ka/paho", b"alive", qos=1)
    assert c.expect_message().payload == b"alive"
    c.close()


def test_keepalive_zero_disables(broker, version):
    c = R.connected(broker.port, version, "ka-zero", keepalive=0)
    assert not c.is_closed(2.5), "keepalive 0 connection was closed"
    assert c.ping().type == R.PINGRESP


def test_v5_server_keep_alive_when_client_asks_too_much(broker_factory):
    b = broker_factory({"mqtt": {"max_keepalive": 1}})
    c = RawClient(b.port, 5)
    t0 = time.time()
    ack = c.connect("ka-server", keepalive=60)
    assert ack.rc == 0
    assert ack.props.get("ServerKeepAlive") == 1, ack
    # The broker enforces its own value, not the client's 60 s.
    _closed_after(c, "5", 5)
    assert time.time() - t0 <= 1.5 + 1.5


def test_v5_no_server_keep_alive_within_limit(broker_factory):
    b = broker_factory({"mqtt": {"max_keepalive": 30}})
    c = RawClient(b.port, 5)
    ack = c.connect("ka-within", keepalive=20)
    assert ack.props.get("ServerKeepAlive", 20) == 20, ack


def test_v311_keepalive_capped(broker_factory):
    b = broker_factory({"mqtt": {"max_keepalive": 1}})
    c = RawClient(b.port, "3.1.1")
    t0 = time.time()
    assert c.connect("ka-cap", keepalive=60).raw == b"\x20\x02\x00\x00"
    _closed_after(c, "3.1.1", 5)
    assert time.time() - t0 <= 1.5 + 1.5, "3.1.1 keepalive not capped to max_keepalive"


def test_connect_timeout(broker_factory):
    """A TCP connection that never sends CONNECT is closed after mqtt.connect_timeout."""
    b = broker_factory({"mqtt": {"connect_timeout": 1}})
    c = RawClient(b.port, 4)
    t0 = time.time()
    assert c.wait_closed(5), "silent connection never closed"
    assert time.time() - t0 >= 0.8
    assert c.before_close == []


def test_half_sent_connect_times_out(broker_factory):
    b = broker_factory({"mqtt": {"connect_timeout": 1}})
    c = RawClient(b.port, 4)
    c.send(R.connect_packet("slow", 4)[:5])
    assert c.wait_closed(5), "connection with half a CONNECT never closed"
    good = R.connected(b.port, 4, "after-slow")
    assert good.ping().type == R.PINGRESP
