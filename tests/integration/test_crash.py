"""Crash test: the broker is SIGKILLed at random moments under load, several times in a row, and
restarted on the same data directory each time. Afterwards it must hold, by message id:

* every message whose PUBACK / PUBCOMP the publisher received reached every matching subscriber:
  at least once for QoS 1 (or a QoS 1 subscription), exactly once for QoS 2 to a QoS 2
  subscription, at the QoS min(published, subscribed); nothing else was delivered;
* every reconnect found its session (session present = 1); subscriptions were never repeated,
  yet messages published after the last restart still arrive;
* retained messages: a static set, and per publisher the last retained message it sent.

All clients are raw (rawmqtt) so both ends of every QoS flow follow the protocol exactly:
publishers resend unacknowledged PUBLISHes (DUP, same packet id) and PUBRELs after each reconnect
and reuse the lowest free packet id (so a packet id the broker failed to release shows up);
QoS 2 subscribers deliver on the first PUBLISH of a packet id and drop resends until PUBREL,
keeping that state across reconnects (MQTT 5 s4.3.3, method B receiver).

The random schedule (load time per cycle, which subscriber stays offline, QoS and retain choices)
comes from one seed, printed at the start and in every failure; rerun a failure with
SHARDMQ_CRASH_SEED=<seed>.
"""
import collections
import os
import random
import threading
import time

import pytest

import rawmqtt as R
from rawmqtt import RawClient, topic_matches

CYCLES = 5
LOAD_S = (1.0, 3.0)          # load per cycle before the SIGKILL
RATE = 300                   # messages per second per publisher
WINDOW = 10                  # publisher in-flight window
MAX_PER_PUBLISHER = 20000
TEST_BUDGET_S = 100          # whole test, per durability mode
PUBLISHERS = [("pa", 4), ("pb", 5)]          # (name, protocol level)
TOPICS = ["crash/%s/%s" % (p, k) for p, _ in PUBLISHERS for k in ("q1", "q2", "ret")]
SUBSCRIBERS = [
    ("s-v3-q1", 4, [(t, 1) for t in TOPICS]),
    ("s-v5-q1", 5, [(t, 1) for t in TOPICS]),
    ("s-v5-q2", 5, [(t, 2) for t in TOPICS]),
    ("s-v3-wild", 4, [("crash/#", 2)]),
    ("s-v5-wild", 5, [("crash/+/q2", 2)]),
]
STATIC_RETAINED = {"crashret/static/%d" % i: b"static-%d" % i for i in range(10)}


T0 = time.monotonic()


def now():
    """Seconds since the module was loaded, for traces."""
    return time.monotonic() - T0


class Target:
    """The broker's current port; `up` is clear while it is down."""

    def __init__(self, port):
        self.port = port
        self.cycle = 0    # number of kills so far
        self.up = threading.Event()
        self.up.set()


class Peer(threading.Thread):
    """A client with a persistent session that reconnects (clean start 0) whenever the broker
    goes away. Errors go to self.errors (checked by the test, never raised in the thread)."""

    def __init__(self, name, level, target, stop, deadline):
        super().__init__(name=name, daemon=True)
        self.cid = "crash-" + name
        self.level = level
        self.target = target
        self.stop = stop
        self.deadline = deadline
        self.errors = []
        self.connects = 0
        self.lock = threading.Lock()

    def error(self, msg):
        with self.lock:
            self.errors.append(msg)

    def props(self):
        return {"SessionExpiryInterval": 3600} if self.level == 5 else None

    def setup(self, first=None):
        """Creates the persistent session; `first(client)` runs on that first connection."""
        c = RawClient(self.target.port, self.level)
        ack = c.connect(self.cid, clean=False, keepalive=0, props=self.props())
        assert ack.rc == 0 and not ack.session_present, ack
        if first:
            first(c)
        c.disconnect()

    def connect(self):
        """Connected RawClient with the session present, or None once stopping."""
        while not self.stop.is_set() and time.time() < self.deadline:
            if not self.target.up.wait(0.2):
                continue
            try:
                c = RawClient(self.target.port, self.level, timeout=3)
                ack = c.connect(self.cid, clean=False, keepalive=0, props=self.props())
            except (OSError, R.Timeout, R.Closed, R.UnexpectedPacket):
                time.sleep(0.05)
                continue
            if ack.rc != 0:
                self.error("CONNACK rc 0x%02x" % ack.rc)
                c.close()
                time.sleep(0.2)
                continue
            if not ack.session_present:
                self.error("session lost: session present = 0 on reconnect %d" % self.connects)
            self.connects += 1
            return c
        return None


class Subscriber(Peer):
    def __init__(self, name, level, subs, *a):
        super().__init__(name, level, *a)
        self.subs = subs
        self.deliveries = collections.defaultdict(list)  # msg id -> [(qos, topic), ...]
        self.trace = collections.defaultdict(list)  # msg id -> every PUBLISH of it (diagnosis)
        self.pending_qos2 = set()   # packet ids received, PUBREL not yet (kept across reconnects)
        self.offline = threading.Event()

    def subscribe(self, c):
        granted = c.subscribe(self.subs).rcs
        assert granted == [q for _, q in self.subs], granted

    def sub_qos(self, topic):
        qs = [q for f, q in self.subs if topic_matches(f, topic)]
        return max(qs) if qs else None

    def handle(self, c, p):
        if p.type == R.PUBLISH:
            self.trace[p.payload.decode()].append(
                "%.3f conn %d pid %s%s%s" % (now(), self.connects, p.packet_id,
                                             " dup" if p.dup else "",
                                        "" if p.qos != 2 or p.packet_id not in self.pending_qos2
                                        else " (pending: dropped)"))
            if self.sub_qos(p.topic) is None:
                self.error("PUBLISH on %s matches no subscription" % p.topic)
            if p.qos == 2:
                if p.packet_id not in self.pending_qos2:
                    self.pending_qos2.add(p.packet_id)
                    self.deliver(p)
                c.pubrec(p.packet_id)
            else:
                self.deliver(p)
                if p.qos == 1:
                    c.puback(p.packet_id)
        elif p.type == R.PUBREL:
            self.pending_qos2.discard(p.packet_id)
            c.pubcomp(p.packet_id)
        elif p.type == R.DISCONNECT:
            pass  # v5 server shutdown / takeover: the connection closes next
        else:
            self.error("unexpected %r" % p)

    def deliver(self, p):
        with self.lock:
            self.deliveries[p.payload.decode()].append((p.qos, p.topic))

    def run(self):
        while not self.stop.is_set() and time.time() < self.deadline:
            if self.offline.is_set():
                time.sleep(0.05)
                continue
            c = self.connect()
            if c is None:
                return
            try:
                while not self.stop.is_set() and not self.offline.is_set():
                    try:
                        p = c.recv(0.1)
                    except R.Timeout:
                        continue
                    self.handle(c, p)
                c.disconnect()
            except (R.Closed, OSError):
                pass
            except R.MalformedFromBroker as e:
                self.error("malformed packet from the broker: %s" % e)
            finally:
                c.close()


class Msg:
    __slots__ = ("mid", "topic", "payload", "qos", "retain", "stage", "sent_in", "acked_in",
                 "history")

    def __init__(self, mid, topic, qos, retain, cycle):
        self.mid, self.topic, self.qos, self.retain = mid, topic, qos, retain
        self.payload = mid.encode()
        self.stage = "publish"   # then "pubrel" (QoS 2 after PUBREC)
        self.sent_in = cycle     # kills before it was first sent / acknowledged
        self.acked_in = None
        self.history = []        # (connection, event), for failure reports

    def __repr__(self):
        return "%s(qos %d%s, sent after kill %d, acked after kill %s)" % (
            self.mid, self.qos, ", retained" if self.retain else "", self.sent_in, self.acked_in)


class Publisher(Peer):
    def __init__(self, name, level, rng, *a):
        super().__init__(name, level, *a)
        self.pub = name
        self.rng = rng
        self.inflight = collections.OrderedDict()   # packet id -> Msg, in send order
        self.acked = {}                              # msg id -> Msg
        self.seq = 0
        self.generating = threading.Event()
        self.generating.set()
        self.started = None
        self.last_retained = None                   # msg id of the last retained message sent
        self.unexpected = 0

    def free_packet_id(self):
        pid = 1
        while pid in self.inflight:
            pid += 1
        return pid

    def next_message(self):
        qos = self.rng.choice((1, 2))
        retain = self.rng.random() < 0.1
        kind = "ret" if retain else "q%d" % qos
        mid = "%s:%d" % (self.pub, self.seq)
        self.seq += 1
        if retain:
            self.last_retained = mid
        return Msg(mid, "crash/%s/%s" % (self.pub, kind), qos, retain, self.target.cycle)

    def send(self, c, pid, m, dup):
        m.history.append("%.3f conn %d %s pid %d" % (now(), self.connects,
                                                     "resend" if dup else "send", pid))
        c.send(R.publish_packet(m.topic, m.payload, m.qos, m.retain, dup, pid, None, self.level))

    def handle(self, c, p):
        m = self.inflight.get(p.packet_id)
        if m is not None:
            m.history.append("%.3f conn %d %s 0x%02x" % (now(), self.connects, p.name,
                                                         p.rc or 0))
        if p.type in (R.PUBACK, R.PUBREC, R.PUBCOMP) and p.rc >= 0x80 and not (
                # MQTT 5 s4.3.3: PUBCOMP 0x92 answers a PUBREL resent after a reconnect when
                # the broker had completed the exchange and its PUBCOMP was lost in the crash.
                p.type == R.PUBCOMP and p.rc == 0x92 and m is not None and
                any("resend PUBREL" in h for h in m.history)):
            self.error("%s with reason 0x%02x for %r" % (p.name, p.rc, m))
        if p.type == R.PUBACK and m is not None and m.qos == 1:
            del self.inflight[p.packet_id]
            m.acked_in = self.target.cycle
            self.acked[m.mid] = m
        elif p.type == R.PUBREC and m is not None and m.qos == 2:
            m.stage = "pubrel"
            c.pubrel(p.packet_id)
        elif p.type == R.PUBCOMP and m is not None and m.stage == "pubrel":
            del self.inflight[p.packet_id]
            m.acked_in = self.target.cycle
            self.acked[m.mid] = m
        elif p.type == R.PUBREC and m is None:
            # Possible after a crash right after the broker acknowledged a resend: reply anyway.
            c.pubrel(p.packet_id)
            self.unexpected += 1
        else:
            self.unexpected += 1

    def run(self):
        self.started = time.time()
        while not self.stop.is_set() and time.time() < self.deadline:
            c = self.connect()
            if c is None:
                return
            try:
                # MQTT s4.4: resend unacknowledged PUBLISH (DUP) and PUBREL, in order.
                for pid, m in list(self.inflight.items()):
                    if m.stage == "publish":
                        self.send(c, pid, m, True)
                    else:
                        m.history.append("%.3f conn %d resend PUBREL pid %d" % (
                            now(), self.connects, pid))
                        c.pubrel(pid)
                while not self.stop.is_set():
                    allowed = RATE * (time.time() - self.started)
                    while (self.generating.is_set() and len(self.inflight) < WINDOW and
                           self.seq < min(allowed, MAX_PER_PUBLISHER)):
                        pid = self.free_packet_id()
                        m = self.next_message()
                        self.inflight[pid] = m   # before sending: a failed send is resent
                        self.send(c, pid, m, False)
                    try:
                        p = c.recv(0.02)
                    except R.Timeout:
                        continue
                    self.handle(c, p)
            except (R.Closed, OSError):
                pass
            except R.MalformedFromBroker as e:
                self.error("malformed packet from the broker: %s" % e)
            finally:
                c.close()


def wait_for(pred, timeout, step=0.1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


@pytest.mark.parametrize("durability", ["wal", "fsync"])
def test_sigkill_under_load_loses_and_duplicates_nothing(broker_factory, durability):
    seed = int(os.environ.get("SHARDMQ_CRASH_SEED", random.randrange(2 ** 32)))
    tag = "[seed %d, durability %s; rerun with SHARDMQ_CRASH_SEED=%d]" % (seed, durability, seed)
    print("crash test", tag)
    rng = random.Random(seed)
    t_start = time.time()
    deadline = t_start + TEST_BUDGET_S
    broker = broker_factory(config={"storage": {"durability": durability},
                                    "mqtt": {"max_queued_messages": 1000000}})
    target = Target(broker.port)
    stop = threading.Event()

    setter = RawClient(broker.port, 5)
    assert setter.connect("crash-static").rc == 0
    for topic, payload in STATIC_RETAINED.items():
        setter.publish_qos(topic, payload, qos=1, retain=True)
    setter.disconnect()

    subs = [Subscriber(n, lvl, s, target, stop, deadline) for n, lvl, s in SUBSCRIBERS]
    for s in subs:
        s.setup(s.subscribe)   # the only SUBSCRIBE of the whole test
    pubs = [Publisher(n, lvl, random.Random(rng.random()), target, stop, deadline)
            for n, lvl in PUBLISHERS]
    for p in pubs:
        p.setup()
    threads = subs + pubs
    try:
        for t in threads:
            t.start()
        kills = []
        for cycle in range(CYCLES):
            load = rng.uniform(*LOAD_S)
            away = rng.choice(subs + [None])   # one subscriber stays offline this cycle
            if away is not None:
                away.offline.set()
            time.sleep(load)
            target.up.clear()
            broker.kill()
            target.cycle += 1
            kills.append((round(load, 2), away and away.name,
                          sum(len(p.acked) for p in pubs), "killed at %.3f" % now()))
            if away is not None:
                away.offline.clear()
            before_last = {mid for p in pubs for mid in set(p.acked)}
            try:
                broker.start()
            except RuntimeError as e:
                pytest.fail("restart after kill %d failed %s: %s" % (cycle + 1, tag, e))
            target.port = broker.port
            target.up.set()
            kills[-1] += ("ready at %.3f" % now(),)
        print("cycles (load s, offline subscriber, acked so far):", kills)
        time.sleep(rng.uniform(0.5, 1.0))   # load after the last restart
        for p in pubs:
            p.generating.clear()
        settled = wait_for(lambda: all(not p.inflight for p in pubs), 30)
        acked = {}
        for p in pubs:
            acked.update(dict(p.acked))
        new_after_last = set(acked) - before_last
        expected = {s.name: {mid for mid, m in acked.items() if s.sub_qos(m.topic) is not None}
                    for s in subs}

        def all_delivered():
            for s in subs:
                with s.lock:
                    if not expected[s.name] <= set(s.deliveries):
                        return False
            return True

        wait_for(all_delivered, max(5, min(30, deadline - time.time())))
        time.sleep(1.0)   # late duplicates would show up now
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    alive = [t.name for t in threads if t.is_alive()]
    assert not alive, "client threads did not stop: %r %s" % (alive, tag)
    assert settled, "publishers still waiting for acks: %r %s" % (
        {p.name: [m.mid for m in p.inflight.values()][:5] for p in pubs}, tag)
    assert time.time() - t_start < TEST_BUDGET_S + 20, "over budget %s" % tag

    print("acked %d messages (%d after the last restart), unexpected acks %r, connects %r" % (
        len(acked), len(new_after_last), {p.name: p.unexpected for p in pubs},
        {t.name: t.connects for t in threads}))
    assert len(acked) >= 200, "too little load to mean anything: %d %s" % (len(acked), tag)
    problems = ["%s: %s" % (t.name, e) for t in threads for e in t.errors[:5]]
    if len(new_after_last) < 20:
        problems.append("only %d messages acknowledged after the last restart" % len(
            new_after_last))
    for s in subs:
        missing = sorted(expected[s.name] - set(s.deliveries), key=lambda x: (x.split(":")[0],
                                                                             int(x.split(":")[1])))
        if missing:
            problems.append("%s: %d acknowledged messages never delivered, e.g. %s" % (
                s.name, len(missing), ["%r %s %s" % (acked[x], s.trace.get(x), acked[x].history)
                                       for x in missing[:4]]))
        for mid, got in s.deliveries.items():
            m = acked.get(mid)
            if m is None:
                problems.append("%s: got %s, which no publisher sent" % (s.name, mid))
                continue
            sq = s.sub_qos(m.topic)
            if sq is None:
                problems.append("%s: got %s on %s, not subscribed" % (s.name, mid, m.topic))
                continue
            want_qos = min(m.qos, sq)
            bad = [g for g in got if g != (want_qos, m.topic)]
            if bad:
                problems.append("%s: %s delivered as %r, expected QoS %d on %s" % (
                    s.name, mid, bad, want_qos, m.topic))
            if want_qos == 2 and len(got) != 1:
                problems.append("%s: QoS 2 message %r delivered %d times; it got %s; publisher: %s"
                                % (s.name, m, len(got), s.trace[mid], m.history))
    # Retained messages: the static set, and each publisher's last retained message.
    want = dict(STATIC_RETAINED)
    for p in pubs:
        if p.last_retained is not None:
            want["crash/%s/ret" % p.pub] = p.last_retained.encode()
    c = RawClient(broker.port, 5)
    assert c.connect("crash-check").rc == 0
    c.subscribe([("crashret/#", 1), ("crash/+/ret", 1)])
    got = {}
    for _ in range(1000):
        try:
            p = c.recv(1.0)
        except R.Timeout:
            break
        if p.type == R.PUBLISH:
            if not p.retain:
                problems.append("retained check got a non-retained %r" % p)
            got[p.topic] = p.payload
            if p.qos == 1:
                c.puback(p.packet_id)
    c.disconnect()
    if got != want:
        problems.append("retained messages after %d crashes:\n got %r\nwant %r" % (CYCLES, got,
                                                                                   want))
    assert not problems, "%d problems %s:\n%s" % (len(problems), tag, "\n".join(problems[:40]))
