"""CLI and process contract: --help/--version, ready file, signals, config checks, admin HTTP."""
import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from conftest import SHARDMQ, TIMEOUT, BrokerProcess, Client
from rawmqtt import PUBLISH, RawClient, publish_packet


def run_cli(args, timeout=TIMEOUT):
    """Run shardmq to completion. If it is still running after `timeout` (e.g. it accepted a
    config it should have refused and is serving), it is stopped and returncode is None."""
    p = subprocess.Popen([SHARDMQ] + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out, _ = p.communicate(timeout=timeout)
        return subprocess.CompletedProcess(p.args, p.returncode, out)
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGTERM)
        try:
            out, _ = p.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            p.kill()
            out, _ = p.communicate()
        return subprocess.CompletedProcess(p.args, None, out)


def http_get(port, path):
    """(status, content_type, body) of GET http://127.0.0.1:port/path (HTTP errors included)."""
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=TIMEOUT) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read()


def test_help_exits_zero_and_documents_flags():
    r = run_cli(["--help"])
    assert r.returncode == 0, r.stdout
    out = r.stdout.decode("utf-8", "replace")
    for flag in ("--config", "--mqtt", "--admin", "--data-dir", "--ready-file"):
        assert flag in out, "--help does not mention %s:\n%s" % (flag, out)


def test_version_exits_zero_and_prints_version():
    r = run_cli(["--version"])
    assert r.returncode == 0, r.stdout
    assert re.search(rb"\d+\.\d+", r.stdout), r.stdout


def test_ready_file_holds_bound_ports(broker):
    ready = os.path.join(broker.workdir, broker.name + ".ready.json")
    with open(ready) as f:
        ports = json.load(f)
    assert set(ports) >= {"mqtt", "admin"}
    assert isinstance(ports["mqtt"], int) and 0 < ports["mqtt"] < 65536
    assert isinstance(ports["admin"], int) and 0 < ports["admin"] < 65536
    assert ports["mqtt"] != ports["admin"]
    # The ports in the file are the ones actually serving.
    c = RawClient(ports["mqtt"], "3.1.1")
    assert c.connect("ready-check").rc == 0
    c.disconnect()
    assert http_get(ports["admin"], "/livez")[0] == 200


def test_restart_on_same_data_dir(tmp_path):
    """SIGTERM exits 0 and releases the data dir: a new process on it starts and serves."""
    b = BrokerProcess(tmp_path, name="restart")
    b.start()
    try:
        c = RawClient(b.port, "5")
        assert c.connect("before-restart").rc == 0
        c.disconnect()
        assert b.stop() == 0, b.log_tail()
        b.start()
        c = RawClient(b.port, "5")
        assert c.connect("after-restart").rc == 0
        c.disconnect()
    finally:
        b.stop()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly_with_exit_zero(broker_factory, version, sig):
    b = broker_factory()
    c = Client(b, version, "sig-client")
    c.connect()
    c.subscribe("a/#", qos=1)
    b.proc.send_signal(sig)
    rc = b.proc.wait(TIMEOUT)
    assert rc == 0, "exit code %s after %s\n%s" % (rc, sig, b.log_tail())
    assert c.disconnected.wait(TIMEOUT), "client connection not closed on shutdown"
    c.close()


def test_sigterm_under_load_exits_zero(broker_factory):
    """A shutdown never hangs on load: SIGTERM while QoS 0 publishers overload a subscriber that
    does not read (socket backlogs, drops on both workers) and persistent QoS 1 sessions queue
    messages; the process still exits 0 and the data dir opens again. The bound (TIMEOUT) is a
    liveness check, not a speed figure."""
    b = broker_factory(config={"workers": 2})
    sub = RawClient(b.port, 5)
    assert sub.connect("load-sub").rc == 0
    sub.subscribe([("load/#", 0)])
    sessions = []
    for i in range(4):
        s = RawClient(b.port, 5)
        assert s.connect("load-persist-%d" % i, clean=False,
                         props={"SessionExpiryInterval": 600}).rc == 0
        s.subscribe([("load/q", 1)])
        sessions.append(s)
    for s in sessions:
        s.close()  # offline: QoS 1 messages queue (and are stored) for them
    pubs = []
    for i in range(4):
        p = RawClient(b.port, 5)
        assert p.connect("load-pub-%d" % i).rc == 0
        pubs.append(p)
    chunk = b"".join(publish_packet("load/%d" % i, b"z" * 500, qos=0, version=5)
                     for i in range(200))
    for _ in range(40):  # bounded: ~16 MB of QoS 0
        for p in pubs:
            p.send(chunk)
    for i in range(50):
        pubs[i % 4].publish_qos("load/q", b"q%d" % i, qos=1)
    for p in pubs:
        p.send(chunk)  # still arriving when the signal comes
    b.proc.send_signal(signal.SIGTERM)
    rc = b.proc.wait(TIMEOUT * 3)
    assert rc == 0, "exit code %s\n%s" % (rc, b.log_tail())
    for c in pubs + [sub]:
        c.close()
    b.start()  # the data dir is released and loads
    c = RawClient(b.port, 5)
    ack = c.connect("load-persist-0", clean=False, props={"SessionExpiryInterval": 600})
    assert ack.session_present
    got = [c.expect(PUBLISH, timeout=TIMEOUT).payload for _ in range(50)]
    assert got == [b"q%d" % i for i in range(50)]
    c.close()


@pytest.mark.parametrize("config,field", [
    ({"mqtt": {"max_packet_size": 1}}, "max_packet_size"),
    ({"mqtt": {"receive_maximum": 0}}, "receive_maximum"),
    ({"mqtt": {"receive_maximum": 70000}}, "receive_maximum"),
    ({"mqtt": {"max_keepalive": 0}}, "max_keepalive"),
    ({"mqtt": {"connect_timeout": 0}}, "connect_timeout"),
    ({"mqtt": {"no_such_option": 1}}, "no_such_option"),
    ({"mqtt": {"max_inflight_out": "many"}}, "max_inflight_out"),
    ({"workers": 1000}, "workers"),
])
def test_bad_config_exits_nonzero_naming_the_field(tmp_path, config, field):
    cfg = tmp_path / "bad.json"
    cfg.write_text(json.dumps(config))
    ready = tmp_path / "ready.json"
    r = run_cli(["serve", "--config", str(cfg), "--mqtt", "127.0.0.1:0", "--admin", "127.0.0.1:0",
                 "--data-dir", str(tmp_path / "data"), "--ready-file", str(ready)], timeout=5)
    out = r.stdout.decode("utf-8", "replace")
    assert r.returncode is not None, "broker accepted bad config %r and served:\n%s" % (config,
                                                                                      out)
    assert r.returncode != 0, "broker accepted bad config %r:\n%s" % (config, out)
    assert field in out or field.replace("_", "") in out.lower().replace("_", ""), \
        "error message does not name %s:\n%s" % (field, out)
    assert not ready.exists(), "ready file written despite bad config"


def test_unparsable_config_exits_nonzero(tmp_path):
    cfg = tmp_path / "bad.json"
    cfg.write_text("{ this is not json")
    r = run_cli(["serve", "--config", str(cfg), "--mqtt", "127.0.0.1:0", "--admin", "127.0.0.1:0",
                 "--data-dir", str(tmp_path / "data"), "--ready-file", str(tmp_path / "r.json")],
                timeout=5)
    assert r.returncode not in (0, None), r.stdout


def test_missing_config_file_exits_nonzero(tmp_path):
    r = run_cli(["serve", "--config", str(tmp_path / "nope.json"), "--mqtt", "127.0.0.1:0",
                 "--admin", "127.0.0.1:0", "--data-dir", str(tmp_path / "data"),
                 "--ready-file", str(tmp_path / "r.json")], timeout=5)
    assert r.returncode not in (0, None), r.stdout


def test_livez_and_readyz(broker):
    status, _, _ = http_get(broker.admin_port, "/livez")
    assert status == 200
    status, _, _ = http_get(broker.admin_port, "/readyz")
    assert status == 200


_SAMPLE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})?\s+[-+]?([0-9.eE+-]+|NaN|[+-]?Inf)'
                     r'(\s+-?[0-9]+)?$')


def test_metrics_is_prometheus_text(broker, version):
    c = Client(broker, version, "metrics-client")
    c.connect()
    c.subscribe("m/t", qos=1)
    c.publish("m/t", b"x", qos=1)
    c.expect_message()
    status, ctype, body = http_get(broker.admin_port, "/metrics")
    assert status == 200
    assert ctype.startswith("text/plain"), ctype
    text = body.decode("utf-8")
    samples = 0
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith(("# HELP", "# TYPE")):
            assert re.match(r"^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]*( |$)", line), line
            continue
        if line.startswith("#"):
            continue
        assert _SAMPLE.match(line), "not a Prometheus sample line: %r" % line
        samples += 1
    assert samples > 0, text
    assert "# TYPE " in text, text
    c.close()


def test_unknown_admin_path_is_404(broker):
    assert http_get(broker.admin_port, "/no-such-endpoint")[0] == 404


def test_data_dir_is_created(broker):
    assert os.path.isdir(broker.data_dir)


def test_serve_keyword_is_optional(tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text("{}")
    ready = tmp_path / "r.json"
    log = open(tmp_path / "log", "wb")
    p = subprocess.Popen([SHARDMQ, "--config", str(cfg), "--mqtt", "127.0.0.1:0", "--admin",
                          "127.0.0.1:0", "--data-dir", str(tmp_path / "d"), "--ready-file",
                          str(ready)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 20
        while not ready.exists() and time.time() < deadline and p.poll() is None:
            time.sleep(0.02)
        assert ready.exists(), "no ready file without the 'serve' keyword"
        port = json.loads(ready.read_text())["mqtt"]
        c = RawClient(port, "5")
        assert c.connect("no-serve").rc == 0
        c.disconnect()
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                assert p.wait(TIMEOUT) == 0
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                raise
