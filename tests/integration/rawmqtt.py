"""Minimal raw-socket MQTT 3.1 / 3.1.1 / 5 client for integration tests (no broker code imported).

Use it when a test needs exact control of the bytes on the wire: packet ids, DUP, withholding
acks, topic aliases, malformed packets, or reading exactly what the broker sent (reason codes,
properties, flags). Everything is synchronous with bounded timeouts.

Quick tour::

    from rawmqtt import RawClient, PUBLISH, PUBACK, DISCONNECT

    c = RawClient(broker.port, version=5)            # version: 3 (MQIsdp), 4 (3.1.1) or 5
    ack = c.connect("cid", clean=True, keepalive=30,
                    props={"SessionExpiryInterval": 60, "ReceiveMaximum": 2})
    assert ack.rc == 0 and ack.props.get("ReceiveMaximum") == 10
    c.subscribe([("a/#", 1)])                         # -> SUBACK packet (c.subscribe returns it)
    c.publish("a/b", b"x", qos=1, packet_id=7)        # sends only; does not wait for PUBACK
    p = c.expect(PUBACK)                              # next packet must be a PUBACK
    m = c.expect(PUBLISH); c.puback(m.packet_id)      # you acknowledge (or not) yourself
    c.send(b"\\xf0\\x00")                              # arbitrary raw bytes (AUTH, malformed, ...)
    d = c.expect_disconnect(0x81)                     # v5 DISCONNECT with reason 0x81, then close
    assert c.wait_closed(2.0)                         # True once the broker closed the socket

Packets from the broker are `Packet` objects: `.type` (int, e.g. PUBLISH == 3), `.name`
("PUBLISH"), `.flags` (low nibble), `.raw` (whole packet bytes) and per-type fields:

* CONNACK: `.session_present`, `.rc` (3.1.1 return code or v5 reason code), `.props`
* PUBLISH: `.topic` (str), `.payload` (bytes), `.qos`, `.retain`, `.dup`, `.packet_id`
  (None for QoS 0), `.props`
* PUBACK / PUBREC / PUBREL / PUBCOMP: `.packet_id`, `.rc` (0 if omitted), `.props`
* SUBACK / UNSUBACK: `.packet_id`, `.rcs` (list of ints; v3.1.1 UNSUBACK has []), `.props`
* DISCONNECT / AUTH: `.rc` (0 if omitted), `.props`;  PINGRESP: nothing extra.

`.props` is a `Props`: ordered list of (name, value) pairs; `props.get(name)` (first value or
None), `props.all(name)` (all values, e.g. UserProperty -> [(k, v), ...] in order),
`name in props`, `props.as_dict()`. Property names are paho's (`MessageExpiryInterval`,
`TopicAlias`, `UserProperty`, `SubscriptionIdentifier`, ...). To send properties, pass a dict or
a list of (name, value) pairs (lists keep order and allow repeats, e.g. several UserProperty).

Low-level builders (return bytes, send them with `c.send`): `connect_packet`, `publish_packet`,
`ack_packet`, `subscribe_packet`, `unsubscribe_packet`, `disconnect_packet`, `pingreq_packet`,
`make_packet(type, flags, body)`, `varint(n)`, `utf8(s)`, `binary(b)`, `encode_props(p)`.

Errors: `Timeout` (nothing arrived in time), `Closed` (the broker closed the connection; the
packets it sent before closing were still returned first), `UnexpectedPacket` (expect() got
something else; the packet is in `.packet`).
"""
import select
import socket
import struct
import time

DEFAULT_TIMEOUT = 5.0

# ---- packet types
CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = \
    8, 9, 10, 11, 12, 13, 14, 15
PACKET_NAMES = {1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK", 5: "PUBREC", 6: "PUBREL",
                7: "PUBCOMP", 8: "SUBSCRIBE", 9: "SUBACK", 10: "UNSUBSCRIBE", 11: "UNSUBACK",
                12: "PINGREQ", 13: "PINGRESP", 14: "DISCONNECT", 15: "AUTH"}

# ---- common v5 reason codes
RC_SUCCESS = 0x00
RC_NO_MATCHING_SUBSCRIBERS = 0x10
RC_NO_SUBSCRIPTION_EXISTED = 0x11
RC_DISCONNECT_WITH_WILL = 0x04
RC_UNSPECIFIED = 0x80
RC_MALFORMED = 0x81
RC_PROTOCOL_ERROR = 0x82
RC_IMPL_SPECIFIC = 0x83
RC_UNSUPPORTED_PROTOCOL_VERSION = 0x84
RC_CLIENT_ID_NOT_VALID = 0x85
RC_NOT_AUTHORIZED = 0x87
RC_SESSION_TAKEN_OVER = 0x8E
RC_KEEPALIVE_TIMEOUT = 0x8D
RC_TOPIC_FILTER_INVALID = 0x8F
RC_TOPIC_NAME_INVALID = 0x90
RC_PACKET_ID_IN_USE = 0x91
RC_PACKET_ID_NOT_FOUND = 0x92
RC_RECEIVE_MAXIMUM_EXCEEDED = 0x93
RC_TOPIC_ALIAS_INVALID = 0x94
RC_PACKET_TOO_LARGE = 0x95
RC_QOS_NOT_SUPPORTED = 0x9B

# ---- v5 properties: id -> (name, kind)
_PROP_DEFS = {
    0x01: ("PayloadFormatIndicator", "byte"),
    0x02: ("MessageExpiryInterval", "u32"),
    0x03: ("ContentType", "str"),
    0x08: ("ResponseTopic", "str"),
    0x09: ("CorrelationData", "bin"),
    0x0B: ("SubscriptionIdentifier", "varint"),
    0x11: ("SessionExpiryInterval", "u32"),
    0x12: ("AssignedClientIdentifier", "str"),
    0x13: ("ServerKeepAlive", "u16"),
    0x15: ("AuthenticationMethod", "str"),
    0x16: ("AuthenticationData", "bin"),
    0x17: ("RequestProblemInformation", "byte"),
    0x18: ("WillDelayInterval", "u32"),
    0x19: ("RequestResponseInformation", "byte"),
    0x1A: ("ResponseInformation", "str"),
    0x1C: ("ServerReference", "str"),
    0x1F: ("ReasonString", "str"),
    0x21: ("ReceiveMaximum", "u16"),
    0x22: ("TopicAliasMaximum", "u16"),
    0x23: ("TopicAlias", "u16"),
    0x24: ("MaximumQoS", "byte"),
    0x25: ("RetainAvailable", "byte"),
    0x26: ("UserProperty", "pair"),
    0x27: ("MaximumPacketSize", "u32"),
    0x28: ("WildcardSubscriptionAvailable", "byte"),
    0x29: ("SubscriptionIdentifierAvailable", "byte"),
    0x2A: ("SharedSubscriptionAvailable", "byte"),
}
PROP_IDS = {name: pid for pid, (name, _) in _PROP_DEFS.items()}


class Timeout(AssertionError):
    """No (complete) packet arrived within the timeout."""


class Closed(AssertionError):
    """The broker closed the connection (EOF or reset)."""


class UnexpectedPacket(AssertionError):
    def __init__(self, msg, packet):
        super().__init__(msg)
        self.packet = packet


class MalformedFromBroker(AssertionError):
    """The broker sent bytes this decoder cannot parse."""


# ------------------------------------------------------------------ encoding helpers
def varint(n):
    """Variable Byte Integer (remaining length, property lengths, subscription ids)."""
    if n < 0 or n > 268435455:
        raise ValueError("varint out of range: %d" % n)
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def u16(n):
    return struct.pack("!H", n)


def u32(n):
    return struct.pack("!I", n)


def utf8(s):
    """Length-prefixed UTF-8 string (bytes are sent as-is, for invalid-UTF-8 tests)."""
    b = s if isinstance(s, (bytes, bytearray)) else s.encode("utf-8")
    return u16(len(b)) + bytes(b)


def binary(b):
    b = b if isinstance(b, (bytes, bytearray)) else b.encode("utf-8")
    return u16(len(b)) + bytes(b)


def _prop_items(props):
    if props is None:
        return []
    if isinstance(props, Props):
        return list(props.items)
    if isinstance(props, dict):
        items = []
        for k, v in props.items():
            # dict convenience: a list value for UserProperty / SubscriptionIdentifier = repeats
            if k in ("UserProperty", 0x26) and isinstance(v, list):
                items.extend((k, x) for x in v)
            else:
                items.append((k, v))
        return items
    return list(props)


def encode_props(props):
    """Property block (length varint + properties). props: dict, list of pairs, Props or None."""
    body = bytearray()
    for key, value in _prop_items(props):
        pid = key if isinstance(key, int) else PROP_IDS[key]
        kind = _PROP_DEFS[pid][1]
        body += varint(pid)
        if kind == "byte":
            body.append(value)
        elif kind == "u16":
            body += u16(value)
        elif kind == "u32":
            body += u32(value)
        elif kind == "varint":
            body += varint(value)
        elif kind == "str":
            body += utf8(value)
        elif kind == "bin":
            body += binary(value)
        elif kind == "pair":
            body += utf8(value[0]) + utf8(value[1])
    return varint(len(body)) + bytes(body)


def make_packet(ptype, flags, body):
    """Fixed header (type<<4 | flags, remaining length) + body."""
    return bytes([(ptype << 4) | (flags & 0x0F)]) + varint(len(body)) + bytes(body)


_PROTO = {3: (b"MQIsdp", 3), 4: (b"MQTT", 4), 5: (b"MQTT", 5)}


def _norm_version(version):
    return {"3.1": 3, "3.1.1": 4, "5": 5, 3: 3, 4: 4, 5: 5}[version]


def connect_packet(client_id="", version=5, clean=True, keepalive=60, props=None, will=None,
                   username=None, password=None, protocol_name=None, protocol_level=None,
                   reserved_flag=False):
    """CONNECT. will: dict(topic, payload=b"", qos=0, retain=False, props=None (v5)).
    protocol_name / protocol_level override the defaults for the version (for error tests)."""
    version = _norm_version(version)
    name, level = _PROTO[version]
    if protocol_name is not None:
        name = protocol_name if isinstance(protocol_name, bytes) else protocol_name.encode()
    if protocol_level is not None:
        level = protocol_level
    flags = 0
    if reserved_flag:
        flags |= 0x01
    if clean:
        flags |= 0x02
    if will:
        flags |= 0x04 | ((will.get("qos", 0) & 3) << 3) | (0x20 if will.get("retain") else 0)
    if password is not None:
        flags |= 0x40
    if username is not None:
        flags |= 0x80
    body = bytearray(utf8(name) + bytes([level, flags]) + u16(keepalive))
    if version == 5:
        body += encode_props(props)
    body += utf8(client_id)
    if will:
        if version == 5:
            body += encode_props(will.get("props"))
        body += utf8(will["topic"]) + binary(will.get("payload", b""))
    if username is not None:
        body += utf8(username)
    if password is not None:
        body += binary(password)
    return make_packet(CONNECT, 0, body)


def publish_packet(topic, payload=b"", qos=0, retain=False, dup=False, packet_id=None,
                   props=None, version=5):
    """PUBLISH. topic may be "" (with a TopicAlias property). packet_id defaults to 1 for QoS>0."""
    version = _norm_version(version)
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    flags = (0x08 if dup else 0) | ((qos & 3) << 1) | (0x01 if retain else 0)
    body = bytearray(utf8(topic))
    if qos > 0:
        body += u16(1 if packet_id is None else packet_id)
    if version == 5:
        body += encode_props(props)
    body += payload
    return make_packet(PUBLISH, flags, body)


def ack_packet(ptype, packet_id, rc=None, props=None, version=5):
    """PUBACK / PUBREC / PUBREL / PUBCOMP. rc None = omitted (v5 short form: success)."""
    version = _norm_version(version)
    flags = 0x02 if ptype == PUBREL else 0
    body = bytearray(u16(packet_id))
    if version == 5 and (rc is not None or props is not None):
        body.append(rc or 0)
        if props is not None:
            body += encode_props(props)
    return make_packet(ptype, flags, body)


def subscribe_packet(packet_id, subs, props=None, version=5):
    """SUBSCRIBE. subs: [(filter, options_byte)] — options = qos | no_local<<2 | rap<<3 | rh<<4
    (for 3.1.1 just the QoS). See `sub_options`."""
    version = _norm_version(version)
    body = bytearray(u16(packet_id))
    if version == 5:
        body += encode_props(props)
    for topic, opts in subs:
        body += utf8(topic) + bytes([opts])
    return make_packet(SUBSCRIBE, 0x02, body)


def sub_options(qos=0, no_local=False, retain_as_published=False, retain_handling=0):
    return qos | (0x04 if no_local else 0) | (0x08 if retain_as_published else 0) | \
        (retain_handling << 4)


def unsubscribe_packet(packet_id, topics, props=None, version=5):
    version = _norm_version(version)
    body = bytearray(u16(packet_id))
    if version == 5:
        body += encode_props(props)
    for t in topics:
        body += utf8(t)
    return make_packet(UNSUBSCRIBE, 0x02, body)


def pingreq_packet():
    return make_packet(PINGREQ, 0, b"")


def disconnect_packet(rc=None, props=None, version=5):
    """DISCONNECT. v5: rc None -> empty body (normal disconnection)."""
    version = _norm_version(version)
    body = bytearray()
    if version == 5 and (rc is not None or props is not None):
        body.append(rc or 0)
        if props is not None:
            body += encode_props(props)
    return make_packet(DISCONNECT, 0, body)


# ------------------------------------------------------------------ decoding
class Props:
    """Ordered v5 properties as (name, value) pairs."""

    def __init__(self, items=None):
        self.items = list(items or [])

    def get(self, name, default=None):
        for k, v in self.items:
            if k == name:
                return v
        return default

    def all(self, name):
        return [v for k, v in self.items if k == name]

    def __contains__(self, name):
        return any(k == name for k, _ in self.items)

    def __len__(self):
        return len(self.items)

    def as_dict(self):
        d = {}
        for k, v in self.items:
            if k in ("UserProperty", "SubscriptionIdentifier"):
                d.setdefault(k, []).append(v)
            else:
                d[k] = v
        return d

    def __repr__(self):
        return "Props(%r)" % (self.items,)


class _Reader:
    def __init__(self, data):
        self.d = bytes(data)
        self.i = 0

    def left(self):
        return len(self.d) - self.i

    def take(self, n):
        if self.left() < n:
            raise MalformedFromBroker("truncated packet")
        b = self.d[self.i:self.i + n]
        self.i += n
        return b

    def byte(self):
        return self.take(1)[0]

    def u16(self):
        return struct.unpack("!H", self.take(2))[0]

    def u32(self):
        return struct.unpack("!I", self.take(4))[0]

    def varint(self):
        mult, val = 1, 0
        for _ in range(4):
            b = self.byte()
            val += (b & 0x7F) * mult
            if not b & 0x80:
                return val
            mult *= 128
        raise MalformedFromBroker("varint longer than 4 bytes")

    def str(self):
        return self.take(self.u16()).decode("utf-8")

    def bin(self):
        return self.take(self.u16())

    def rest(self):
        b = self.d[self.i:]
        self.i = len(self.d)
        return b

    def props(self):
        n = self.varint()
        sub = _Reader(self.take(n))
        items = []
        while sub.left():
            pid = sub.varint()
            if pid not in _PROP_DEFS:
                raise MalformedFromBroker("unknown property id 0x%02x" % pid)
            name, kind = _PROP_DEFS[pid]
            if kind == "byte":
                v = sub.byte()
            elif kind == "u16":
                v = sub.u16()
            elif kind == "u32":
                v = sub.u32()
            elif kind == "varint":
                v = sub.varint()
            elif kind == "str":
                v = sub.str()
            elif kind == "bin":
                v = sub.bin()
            else:
                v = (sub.str(), sub.str())
            items.append((name, v))
        return Props(items)


class Packet:
    """A decoded packet. See the module docstring for the fields per type."""

    def __init__(self, ptype, flags, raw):
        self.type = ptype
        self.flags = flags
        self.raw = raw
        self.name = PACKET_NAMES.get(ptype, "RESERVED%d" % ptype)
        self.props = Props()
        self.rc = None
        self.packet_id = None

    def __repr__(self):
        skip = {"raw", "type", "flags", "name"}
        fields = ", ".join("%s=%r" % (k, v) for k, v in self.__dict__.items()
                           if k not in skip and v is not None and not (k == "props" and not v))
        return "<%s flags=0x%x %s>" % (self.name, self.flags, fields)


def decode_packet(ptype, flags, body, version, raw=b""):
    """Decode one packet body sent by the broker (server -> client packet types)."""
    v5 = version == 5
    p = Packet(ptype, flags, raw)
    r = _Reader(body)
    if ptype == CONNACK:
        p.session_present = bool(r.byte() & 0x01)
        p.rc = r.byte()
        if v5 and r.left():
            p.props = r.props()
    elif ptype == PUBLISH:
        p.dup = bool(flags & 0x08)
        p.qos = (flags >> 1) & 3
        p.retain = bool(flags & 0x01)
        p.topic = r.str()
        if p.qos:
            p.packet_id = r.u16()
        if v5:
            p.props = r.props()
        p.payload = r.rest()
    elif ptype in (PUBACK, PUBREC, PUBREL, PUBCOMP):
        p.packet_id = r.u16()
        p.rc = 0
        if v5 and r.left():
            p.rc = r.byte()
            if r.left():
                p.props = r.props()
    elif ptype in (SUBACK, UNSUBACK):
        p.packet_id = r.u16()
        if v5:
            p.props = r.props()
        p.rcs = list(r.rest())
    elif ptype in (DISCONNECT, AUTH):
        p.rc = 0
        if r.left():
            p.rc = r.byte()
            if r.left():
                p.props = r.props()
    elif ptype == PINGRESP:
        pass
    else:
        p.body = body
    return p


# ------------------------------------------------------------------ client
def topic_matches(filt, topic):
    """Reference matcher (s4.7): `+` one level (possibly empty), `#` the parent and any levels
    below; `$` topics never match a filter starting with a wildcard."""
    if topic.startswith("$") and filt[:1] in ("+", "#"):
        return False
    f, t = filt.split("/"), topic.split("/")
    for i, part in enumerate(f):
        if part == "#":
            return True
        if i >= len(t) or (part != "+" and part != t[i]):
            return False
    return len(f) == len(t)


def connected(port, version=5, client_id="", **kw):
    """A RawClient already connected (CONNACK success asserted)."""
    c = RawClient(port, version)
    ack = c.connect(client_id, **kw)
    assert ack.rc == 0, ack
    return c


class RawClient:
    """One TCP connection to the broker. version: 3 / 4 / 5 or "3.1" / "3.1.1" / "5"."""

    def __init__(self, port, version=5, host="127.0.0.1", timeout=DEFAULT_TIMEOUT):
        self.version = _norm_version(version)
        self.v5 = self.version == 5
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.eof = False
        self.received = []        # every packet read so far, in order
        self._next_id = 0

    # ---- plumbing
    def next_packet_id(self):
        self._next_id = self._next_id % 65535 + 1
        return self._next_id

    def send(self, data):
        """Send raw bytes. Raises Closed if the broker has already closed the connection."""
        try:
            self.sock.sendall(bytes(data))
        except (BrokenPipeError, ConnectionResetError) as e:
            self.eof = True
            raise Closed("send failed: %s" % e)

    def _fill(self, deadline):
        """Read more bytes into buf. False on timeout; sets eof on close."""
        if self.eof:
            return False
        left = deadline - time.time()
        if left <= 0:
            return False
        r, _, _ = select.select([self.sock], [], [], left)
        if not r:
            return False
        try:
            chunk = self.sock.recv(65536)
        except (ConnectionResetError, ConnectionAbortedError, OSError):
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def _try_parse(self):
        """Parse one complete packet from buf, or None."""
        if len(self.buf) < 2:
            return None
        mult, length, i = 1, 0, 1
        while True:
            if i >= len(self.buf):
                return None
            b = self.buf[i]
            length += (b & 0x7F) * mult
            mult *= 128
            i += 1
            if not b & 0x80:
                break
            if i > 4:
                raise MalformedFromBroker("bad remaining length from broker")
        if len(self.buf) < i + length:
            return None
        raw = bytes(self.buf[:i + length])
        del self.buf[:i + length]
        ptype, flags = raw[0] >> 4, raw[0] & 0x0F
        return decode_packet(ptype, flags, raw[i:], self.version, raw)

    def recv(self, timeout=None):
        """Next packet from the broker. Raises Timeout or Closed."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.time() + timeout
        while True:
            p = self._try_parse()
            if p is not None:
                self.received.append(p)
                return p
            if not self._fill(deadline):
                if self.eof:
                    raise Closed("connection closed by broker")
                raise Timeout("no packet within %.1fs" % timeout)

    def try_recv(self, timeout=0.3):
        """Next packet or None if nothing arrives within timeout (Closed still raises)."""
        try:
            return self.recv(timeout)
        except Timeout:
            return None

    def expect(self, ptype, timeout=None, skip=()):
        """Next packet, which must be of type ptype (packets whose type is in skip are dropped)."""
        deadline = time.time() + (self.timeout if timeout is None else timeout)
        while True:
            p = self.recv(max(0.0, deadline - time.time()))
            if p.type in skip:
                continue
            if p.type != ptype:
                raise UnexpectedPacket("expected %s, got %r" % (PACKET_NAMES[ptype], p), p)
            return p

    def recv_all(self, timeout=0.5):
        """All packets that arrive until `timeout` passes with nothing new (stops at close)."""
        out = []
        while True:
            try:
                out.append(self.recv(timeout))
            except (Timeout, Closed):
                return out

    def wait_closed(self, timeout=None):
        """True if the broker closes the connection within timeout. Packets read meanwhile are
        kept in self.received (and self.before_close)."""
        deadline = time.time() + (self.timeout if timeout is None else timeout)
        self.before_close = []
        while True:
            try:
                self.before_close.append(self.recv(max(0.0, deadline - time.time())))
            except Closed:
                return True
            except Timeout:
                return False

    def expect_disconnect(self, rc=None, timeout=None):
        """v5: next packet must be DISCONNECT (with reason rc if given). Returns it."""
        d = self.expect(DISCONNECT, timeout)
        if rc is not None:
            assert d.rc == rc, "DISCONNECT reason 0x%02x, expected 0x%02x (%r)" % (d.rc, rc, d)
        return d

    def is_closed(self, timeout=0.2):
        """True if the broker closes the connection within timeout. Packets that arrive
        meanwhile are consumed (kept in self.received / self.before_close)."""
        return self.wait_closed(timeout)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def shutdown(self):
        """Abnormal close: no DISCONNECT."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    # ---- high-level
    def connect(self, client_id="", clean=True, keepalive=60, props=None, will=None,
                username=None, password=None, timeout=None, expect_connack=True, **kw):
        """Send CONNECT and return the CONNACK packet (or None if expect_connack is False)."""
        self.send(connect_packet(client_id, self.version, clean, keepalive, props, will,
                                 username, password, **kw))
        if not expect_connack:
            return None
        return self.expect(CONNACK, timeout)

    def publish(self, topic, payload=b"", qos=0, retain=False, dup=False, packet_id=None,
                props=None):
        """Send PUBLISH (no waiting). Returns the packet id used (None for QoS 0)."""
        if qos and packet_id is None:
            packet_id = self.next_packet_id()
        self.send(publish_packet(topic, payload, qos, retain, dup, packet_id, props,
                                 self.version))
        return packet_id

    def puback(self, packet_id, rc=None, props=None):
        self.send(ack_packet(PUBACK, packet_id, rc, props, self.version))

    def pubrec(self, packet_id, rc=None, props=None):
        self.send(ack_packet(PUBREC, packet_id, rc, props, self.version))

    def pubrel(self, packet_id, rc=None, props=None):
        self.send(ack_packet(PUBREL, packet_id, rc, props, self.version))

    def pubcomp(self, packet_id, rc=None, props=None):
        self.send(ack_packet(PUBCOMP, packet_id, rc, props, self.version))

    def subscribe(self, subs, props=None, packet_id=None, timeout=None, wait=True):
        """subs: [(filter, qos_or_options_byte)] or a single filter string (QoS 0).
        Returns the SUBACK (wait=True) or the packet id."""
        if isinstance(subs, str):
            subs = [(subs, 0)]
        packet_id = packet_id or self.next_packet_id()
        self.send(subscribe_packet(packet_id, subs, props, self.version))
        if not wait:
            return packet_id
        ack = self.expect(SUBACK, timeout)
        assert ack.packet_id == packet_id, "SUBACK for %d, expected %d" % (ack.packet_id,
                                                                             packet_id)
        return ack

    def unsubscribe(self, topics, props=None, packet_id=None, timeout=None, wait=True):
        if isinstance(topics, str):
            topics = [topics]
        packet_id = packet_id or self.next_packet_id()
        self.send(unsubscribe_packet(packet_id, topics, props, self.version))
        if not wait:
            return packet_id
        return self.expect(UNSUBACK, timeout)

    def ping(self, timeout=None):
        self.send(pingreq_packet())
        return self.expect(PINGRESP, timeout)

    def disconnect(self, rc=None, props=None):
        """Send DISCONNECT and close the socket."""
        try:
            self.send(disconnect_packet(rc, props, self.version))
        except Closed:
            pass
        self.close()

    def receive_publish_qos(self, timeout=None):
        """Receive one PUBLISH and complete its QoS flow (PUBACK, or PUBREC/PUBREL/PUBCOMP)."""
        p = self.expect(PUBLISH, timeout)
        if p.qos == 1:
            self.puback(p.packet_id)
        elif p.qos == 2:
            self.pubrec(p.packet_id)
            rel = self.expect(PUBREL, timeout)
            assert rel.packet_id == p.packet_id
            self.pubcomp(p.packet_id)
        return p

    def collect_publishes(self, n, timeout=None, ack=True):
        """Read until n PUBLISHes arrived (wire order), completing QoS flows when ack is True:
        PUBACK for QoS 1, PUBREC for QoS 2 and PUBCOMP for every PUBREL. Other packets are
        kept in self.received only. Raises Timeout if fewer than n arrive."""
        deadline = time.time() + (self.timeout if timeout is None else timeout)
        out = []
        while len(out) < n:
            left = deadline - time.time()
            if left <= 0:
                raise Timeout("got %d of %d PUBLISHes: %r" % (len(out), n, out))
            p = self.recv(left)
            if p.type == PUBLISH:
                out.append(p)
                if ack and p.qos == 1:
                    self.puback(p.packet_id)
                elif ack and p.qos == 2:
                    self.pubrec(p.packet_id)
            elif p.type == PUBREL and ack:
                self.pubcomp(p.packet_id)
        return out

    def publish_qos(self, topic, payload=b"", qos=1, retain=False, props=None, timeout=None):
        """Publish and complete the QoS flow. Returns the final ack (PUBACK / PUBCOMP); for QoS 0
        a PINGREQ/PINGRESP round trip follows, so the broker has processed the PUBLISH."""
        pid = self.publish(topic, payload, qos, retain, props=props)
        if qos == 0:
            self.ping(timeout)
            return None
        if qos == 1:
            ack = self.expect(PUBACK, timeout)
            assert ack.packet_id == pid
            return ack
        if qos == 2:
            rec = self.expect(PUBREC, timeout)
            assert rec.packet_id == pid
            self.pubrel(pid)
            comp = self.expect(PUBCOMP, timeout)
            assert comp.packet_id == pid
            return comp
