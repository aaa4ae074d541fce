"""$SYS statistics (published retained every mqtt.sys_interval seconds): version, uptime, clients,
message counters, subscriptions and retained counts; clients cannot publish into $SYS."""
import queue
import re
import time

import pytest

from conftest import Client

SYS = {"mqtt": {"sys_interval": 1}}


@pytest.fixture
def clients():
    made = []
    yield made
    for c in reversed(made):
        try:
            c.c.disconnect()  # first, so the loop thread ends at once
        except Exception:
            pass
        c.c.loop_stop()


def paho(broker, version, cid, clients, **connect_kw):
    c = Client(broker, version, cid)
    clients.append(c)
    c.connect(**connect_kw)
    return c


def number(payload):
    """Leading integer of a $SYS value ("42", "17 seconds")."""
    m = re.match(rb"\s*(\d+)", payload)
    assert m, "not a number: %r" % payload
    return int(m.group(1))


class SysWatcher:
    """Subscribes to $SYS topics and keeps the values seen, in arrival order, per topic."""

    def __init__(self, client):
        self.c = client
        self.values = {}

    def pump(self, wait=0.05):
        try:
            m = self.c.messages.get(timeout=wait)
        except queue.Empty:
            return
        self.values.setdefault(m.topic, []).append(m)

    def wait_for(self, topic, pred=lambda m: True, timeout=6.0, what=""):
        """First message on topic (already seen after `since` or new) for which pred holds."""
        deadline = time.time() + timeout
        checked = 0
        while True:
            msgs = self.values.get(topic, [])
            for m in msgs[checked:]:
                if pred(m):
                    return m
            checked = len(msgs)
            if time.time() >= deadline:
                seen = [x.payload for x in msgs]
                raise AssertionError("no %s value on %s within %.0fs (seen %r)" % (
                    what or "matching", topic, timeout, seen[-5:]))
            self.pump()

    def settled(self, topic, wait=1.3):
        """The last value seen after pumping for more than one sys_interval: it reflects the
        state at the start of the wait (a value published before it may still be in flight)."""
        self.wait_for(topic)
        deadline = time.time() + wait
        while time.time() < deadline:
            self.pump()
        return number(self.values[topic][-1].payload)


def watcher(broker, version, clients, cid="sysw"):
    c = paho(broker, version, cid, clients)
    c.subscribe("$SYS/#", qos=0)
    return SysWatcher(c)


def test_version_uptime_and_retained_values(broker_factory, version, clients):
    """version is non-empty, uptime increases; the values are retained: a client subscribing
    later gets them at once with RETAIN 1."""
    b = broker_factory(SYS)
    w = watcher(b, version, clients)
    v = w.wait_for("$SYS/broker/version", what="version")
    assert v.payload.strip(), "empty version"
    u1 = number(w.wait_for("$SYS/broker/uptime").payload)
    u2 = number(w.wait_for("$SYS/broker/uptime", lambda m: number(m.payload) > u1,
                           timeout=4, what="increasing uptime").payload)
    assert u1 < u2 <= u1 + 4
    late = paho(b, version, "late", clients)
    late.subscribe("$SYS/broker/version", qos=0)
    m = late.expect_message(timeout=0.9)  # less than one sys_interval: it must be the retained one
    assert (m.topic, m.retain, m.payload) == ("$SYS/broker/version", 1, v.payload)


def test_clients_connected_follows_connections(broker_factory, version, clients):
    b = broker_factory(SYS)
    w = watcher(b, version, clients)
    topic = "$SYS/broker/clients/connected"
    w.wait_for(topic, lambda m: number(m.payload) == 1, what="1 connected")
    extra = [paho(b, version, "extra%d" % i, clients) for i in range(2)]
    w.wait_for(topic, lambda m: number(m.payload) == 3, what="3 connected")
    for c in extra:
        c.disconnect()
    w.wait_for(topic, lambda m: number(m.payload) == 1, what="back to 1 connected")


def test_message_counters_increase(broker_factory, version, clients):
    b = broker_factory(SYS)
    w = watcher(b, version, clients)
    rec0 = number(w.wait_for("$SYS/broker/messages/received").payload)
    sent0 = number(w.wait_for("$SYS/broker/messages/sent").payload)
    sub = paho(b, version, "sub", clients)
    sub.subscribe("cnt/t", qos=1)
    pub = paho(b, version, "pub", clients)
    n = 20
    for i in range(n):
        pub.publish("cnt/t", b"x", qos=1)
    sub.expect_messages(n)
    w.wait_for("$SYS/broker/messages/received", lambda m: number(m.payload) >= rec0 + n,
               what=">= %d received" % (rec0 + n))
    w.wait_for("$SYS/broker/messages/sent", lambda m: number(m.payload) >= sent0 + n,
               what=">= %d sent" % (sent0 + n))


def test_subscription_and_retained_counts(broker_factory, version, clients):
    b = broker_factory(SYS)
    w = watcher(b, version, clients)
    subs_t, ret_t = "$SYS/broker/subscriptions/count", "$SYS/broker/retained messages/count"
    subs0 = w.settled(subs_t)
    ret0 = w.settled(ret_t, wait=0)
    c = paho(b, version, "subs", clients)
    for f in ("sc/a", "sc/b", "sc/#"):
        c.subscribe(f, qos=0)
    c.publish("rc/a", b"1", qos=1, retain=True)
    c.publish("rc/b", b"2", qos=1, retain=True)
    w.wait_for(subs_t, lambda m: number(m.payload) == subs0 + 3, what="%d subscriptions" % (
        subs0 + 3))
    w.wait_for(ret_t, lambda m: number(m.payload) == ret0 + 2, what="%d retained" % (ret0 + 2))
    c.unsubscribe("sc/#")
    c.publish("rc/a", b"", qos=1, retain=True)
    w.wait_for(subs_t, lambda m: number(m.payload) == subs0 + 2, what="%d subscriptions" % (
        subs0 + 2))
    w.wait_for(ret_t, lambda m: number(m.payload) == ret0 + 1, what="%d retained" % (ret0 + 1))


def test_clients_cannot_publish_into_sys(broker_factory, version, clients):
    b = broker_factory(SYS)
    w = watcher(b, version, clients)
    real = w.wait_for("$SYS/broker/version").payload
    evil = paho(b, version, "evil", clients)
    evil.publish("$SYS/broker/version", b"fake", qos=1, retain=True)
    evil.publish("$SYS/broker/version", b"fake", qos=0)
    evil.publish("$SYS/fake/topic", b"fake", qos=1)
    deadline = time.time() + 2.2
    while time.time() < deadline:
        w.pump()
    seen = [m.payload for msgs in w.values.values() for m in msgs]
    assert b"fake" not in seen
    assert "$SYS/fake/topic" not in w.values
    late = paho(b, version, "late", clients)
    late.subscribe("$SYS/broker/version", qos=0)
    assert late.expect_message(timeout=3).payload == real


def test_sys_interval_zero_disables_sys(broker_factory, version, clients):
    b = broker_factory({"mqtt": {"sys_interval": 0}})
    c = paho(b, version, "sysw", clients)
    c.subscribe("$SYS/#", qos=0)
    c.expect_no_message(1.5)
