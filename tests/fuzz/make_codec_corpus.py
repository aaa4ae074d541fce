#!/usr/bin/env python3
"""Writes the seed corpus for codec_fuzz into tests/fuzz/corpus/codec/ (one file per seed).

Seeds are small, valid packets of every type for MQTT 3.1, 3.1.1 and 5.0, a few malformed ones and
some multi-packet streams, so the fuzzer starts from inputs that reach deep into the decoder.
Re-running the script rewrites these seeds and leaves other files (fuzzer finds, crash
reproducers) alone. Usage: tests/fuzz/make_codec_corpus.py
"""
import os


def vbi(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def s(text):
    data = text if isinstance(text, bytes) else text.encode()
    return len(data).to_bytes(2, "big") + data


def u16(n):
    return n.to_bytes(2, "big")


def u32(n):
    return n.to_bytes(4, "big")


def packet(first, body):
    return bytes([first]) + vbi(len(body)) + body


def props(*items):
    body = b"".join(items)
    return vbi(len(body)) + body


def user(k, v):
    return b"\x26" + s(k) + s(v)


def connect(level, flags, client, payload_rest=b"", properties=b""):
    name = "MQIsdp" if level == 3 else "MQTT"
    head = s(name) + bytes([level, flags]) + u16(60)
    if level == 5:
        head += properties or props()
    return packet(0x10, head + s(client) + payload_rest)


SEEDS = {
    # CONNECT
    "connect_v31": connect(3, 0x02, "c31"),
    "connect_v311": connect(4, 0x02, "clid"),
    "connect_v311_will_user_pass": connect(4, 0xEE, "c", s("will/t") + s(b"bye") + s("u") + s(b"p")),
    "connect_v5": connect(5, 0x02, "c5"),
    "connect_v5_full": connect(
        5, 0xF6, "c",
        props(b"\x18" + u32(30), b"\x01\x01", b"\x03" + s("text/plain"), user("wk", "wv"))
        + s("lwt") + s(b"gone") + s("name") + s(b"pw"),
        props(b"\x11" + u32(3600), b"\x21" + u16(20), b"\x27" + u32(65536), b"\x22" + u16(10),
              b"\x19\x01", b"\x17\x00", user("k", "v"), b"\x15" + s("SCRAM"), b"\x16" + s(b"\x01\x02"))),
    "connect_bad_level": connect(6, 0x02, "c"),
    "connect_reserved_flag": connect(4, 0x03, "c"),
    # CONNACK
    "connack_v311": bytes.fromhex("20020100"),
    "connack_v5_props": packet(0x20, b"\x00\x00" + props(b"\x12" + s("auto-1"), b"\x13" + u16(30),
                                                          b"\x24\x01", b"\x25\x00")),
    # PUBLISH
    "publish_qos0": bytes.fromhex("30070003612f626869"),
    "publish_qos1_dup_retain": packet(0x3B, s("a/b") + u16(10) + b"21.5"),
    "publish_qos2": packet(0x34, s("x") + u16(0xFFFF) + b"p"),
    "publish_v5_props": packet(0x32, s("a/b") + u16(7) + props(
        b"\x01\x01", b"\x02" + u32(60), b"\x03" + s("application/json"), b"\x08" + s("reply"),
        b"\x09" + s(b"\x00\x01"), b"\x0b\x01", b"\x0b\xff\xff\xff\x7f", b"\x23" + u16(3),
        user("a", "1")) + b"{}"),
    "publish_v5_alias_only": packet(0x34, s("") + u16(5) + props(b"\x23" + u16(7)) + b"z"),
    "publish_big": packet(0x30, s("big") + b"x" * 300),
    "publish_wildcard": packet(0x30, s("a/+")),
    "publish_qos3": packet(0x36, s("a") + u16(1)),
    "publish_bad_utf8": packet(0x30, s(b"a\xed\xa0\x80")),
    # PUBACK family, short and long forms
    "puback": bytes.fromhex("40020007"),
    "pubrec_reason": bytes.fromhex("5003000710"),
    "pubrel": bytes.fromhex("62020007"),
    "pubcomp_props": packet(0x70, u16(9) + b"\x92" + props(b"\x1f" + s("why"), user("k", "v"))),
    "pubrel_bad_flags": bytes.fromhex("60020007"),
    # SUBSCRIBE / SUBACK
    "subscribe_v311": packet(0x82, u16(1) + s("a/b") + b"\x01" + s("c/#") + b"\x02"),
    "subscribe_v5": packet(0x82, u16(2) + props(b"\x0b\x2a", user("u", "p"))
                           + s("a/b") + b"\x05" + s("c/d") + b"\x1a" + s("$share/g/e") + b"\x2e"),
    "subscribe_empty": packet(0x82, u16(1)),
    "suback_v311": bytes.fromhex("9005000a000180"),
    "suback_v5": packet(0x90, u16(11) + props(b"\x1f" + s("r")) + b"\x00\x02\x8f"),
    # UNSUBSCRIBE / UNSUBACK
    "unsubscribe_v311": packet(0xA2, u16(3) + s("a/b") + s("c/#")),
    "unsubscribe_v5": packet(0xA2, u16(4) + props(user("k", "v")) + s("a/+")),
    "unsuback_v311": bytes.fromhex("b002000b"),
    "unsuback_v5": packet(0xB0, u16(11) + props() + b"\x00\x11"),
    # PING, DISCONNECT, AUTH
    "pingreq": bytes.fromhex("c000"),
    "pingresp": bytes.fromhex("d000"),
    "disconnect": bytes.fromhex("e000"),
    "disconnect_reason": bytes.fromhex("e00104"),
    "disconnect_props": packet(0xE0, b"\x80" + props(b"\x11" + u32(0), b"\x1f" + s("bye"),
                                                     b"\x1c" + s("other:1883"))),
    "auth_empty": bytes.fromhex("f000"),
    "auth_continue": packet(0xF0, b"\x18" + props(b"\x15" + s("SCRAM-SHA-1"), b"\x16" + s(b"r=abc"))),
    # Framing
    "remaining_length_5_bytes": bytes.fromhex("30ffffffff0100"),
    "remaining_length_non_minimal": bytes.fromhex("c08000"),
    "remaining_length_max": bytes.fromhex("30ffffff7f000161"),
    "stream_connect_publish_ping": connect(4, 0x02, "c") + packet(0x30, s("t") + b"p")
                                   + bytes.fromhex("c000"),
    "stream_partial": bytes.fromhex("c000") + packet(0x30, s("abc") + b"xyz")[:4],
}


def main():
    out_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "codec")
    os.makedirs(out_dir, exist_ok=True)
    for name, data in sorted(SEEDS.items()):
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(data)
    print(f"wrote {len(SEEDS)} seeds to {out_dir}")


if __name__ == "__main__":
    main()
