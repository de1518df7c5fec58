"""Hostile clients against `fulfillment broker`'s listener limits, on loopback.

Usage: listener_limits_suite.py PORT BROKER_LOG METRICS_URL

The broker runs with --request-deadline 2 --idle-timeout 6 --max-request-bytes 16384
--max-in-flight 2 --auto-create-topics 1 and the default connection limits (1024 in total,
256 per address).
Prints one line per check and OK at the end; exits non-zero on the first failure.
"""
import re
import resource
import socket
import struct
import subprocess
import sys
import time
import urllib.request

PORT = int(sys.argv[1])
LOG = sys.argv[2]
METRICS = sys.argv[3]
FLOOD_ADDRESS = "127.0.0.2"  # Linux answers for all of 127/8: the flood comes from another host
KCAT = "/usr/bin/kcat"


def fail(message):
    print("FAIL: " + message)
    sys.exit(1)


def api_versions_request(correlation):
    client = b"limits-suite"
    body = struct.pack(">hhih", 18, 0, correlation, len(client)) + client
    return struct.pack(">i", len(body)) + body


def read_exact(sock, count):
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("closed after %d of %d bytes" % (len(data), count))
        data += chunk
    return data


def read_response(sock):
    (length,) = struct.unpack(">i", read_exact(sock, 4))
    payload = read_exact(sock, length)
    (correlation,) = struct.unpack(">i", payload[:4])
    return correlation


def closed_by_peer(sock, wait):
    """True when the peer closes the socket within `wait` seconds."""
    sock.settimeout(wait)
    try:
        return sock.recv(1) == b""
    except socket.timeout:
        return False
    except ConnectionError:
        return True


def kcat_round_trip(topic, count):
    lines = "".join("k%d:v%d\n" % (i, i) for i in range(count))
    produced = subprocess.run(
        [KCAT, "-b", "127.0.0.1:%d" % PORT, "-P", "-t", topic, "-K:"], input=lines.encode(), capture_output=True, timeout=30)
    if produced.returncode != 0:
        fail("kcat could not produce: %s" % produced.stderr.decode())
    consumed = subprocess.run(
        [KCAT, "-b", "127.0.0.1:%d" % PORT, "-C", "-t", topic, "-e", "-q", "-f", "%k=%s\\n"], capture_output=True, timeout=30)
    values = consumed.stdout.decode().split()
    if consumed.returncode != 0 or len(values) != count:
        fail("kcat read %d of %d records back: %s" % (len(values), count, consumed.stderr.decode()))


def refused_total(reason):
    text = urllib.request.urlopen(METRICS, timeout=10).read().decode()
    match = re.search(r'^fulfillment_wire_refused_total\{reason="%s"\} (\S+)$' % reason, text, re.M)
    return float(match.group(1)) if match else 0.0


def log_lines(pattern):
    with open(LOG) as handle:
        return [line for line in handle if pattern in line]


def flood():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    sockets = []
    for _ in range(2000):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((FLOOD_ADDRESS, 0))
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", PORT))
        sockets.append(sock)
    time.sleep(1.5)
    # With the flood held open, the broker still serves a well-behaved client on another address.
    kcat_round_trip("after-flood", 200)
    alive = 0
    for sock in sockets:
        try:
            alive += sock.recv(1, socket.MSG_PEEK) != b""
        except BlockingIOError:
            alive += 1  # open, nothing to read
        except OSError:
            pass
    if alive > 256:
        fail("%d flood connections are still open; --max-connections-per-address is 256" % alive)
    if alive < 200:
        fail("only %d flood connections are open; the first 256 should have been admitted" % alive)
    refusals = refused_total("max_connections_per_address")
    if refusals < 2000 - 256:
        fail("fulfillment_wire_refused_total counts %d per-address refusals, expected at least %d" % (refusals, 2000 - 256))
    lines = log_lines("refusing Kafka connections from %s" % FLOOD_ADDRESS)
    if len(lines) != 1:
        fail("expected one log line for the refused flood, found %d" % len(lines))
    for sock in sockets:
        sock.close()
    print("flood: 2000 connections from %s, %d held, %d refused, one log line; kcat served" % (FLOOD_ADDRESS, alive, refusals))


def slow_sender():
    sock = socket.create_connection(("127.0.0.1", PORT))
    request = api_versions_request(7)
    started = time.monotonic()
    cut = None
    for byte in request:
        try:
            sock.send(bytes([byte]))
        except OSError:
            cut = time.monotonic() - started
            break
        if closed_by_peer(sock, 1.0):
            cut = time.monotonic() - started
            break
    if cut is None:
        fail("a byte-a-second sender was never cut off")
    if not 1.5 <= cut <= 5:
        fail("the byte-a-second sender was cut off after %.1f s; --request-deadline is 2 s" % cut)
    print("slow sender: cut off after %.1f s (deadline 2 s)" % cut)


def steady_client_outlives_the_deadline():
    """Whole requests a second apart are not a slow frame and not idle."""
    sock = socket.create_connection(("127.0.0.1", PORT))
    sock.settimeout(5)
    for correlation in range(7):
        sock.sendall(api_versions_request(correlation))
        if read_response(sock) != correlation:
            fail("answers came back out of order")
        time.sleep(1)
    sock.close()
    print("steady client: 7 requests over 7 s answered, connection kept")


def idle_connection():
    sock = socket.create_connection(("127.0.0.1", PORT))
    started = time.monotonic()
    if not closed_by_peer(sock, 12):
        fail("an idle connection was kept past --idle-timeout 6")
    waited = time.monotonic() - started
    if not 5 <= waited <= 10:
        fail("the idle connection was closed after %.1f s; --idle-timeout is 6 s" % waited)
    print("idle: closed after %.1f s (timeout 6 s)" % waited)


def oversized_frame():
    sock = socket.create_connection(("127.0.0.1", PORT))
    sock.sendall(struct.pack(">i", 20000) + b"\0" * 100)
    if not closed_by_peer(sock, 3):
        fail("a 20000-byte frame was not refused with --max-request-bytes 16384")
    print("oversized: a 20000-byte frame closed the connection (limit 16384)")


def pipelined_requests():
    """50 requests in one write with --max-in-flight 2: the listener reads them as answers go
    out, and every one is answered in order (back-pressure, nothing refused)."""
    sock = socket.create_connection(("127.0.0.1", PORT))
    sock.settimeout(10)
    sock.sendall(b"".join(api_versions_request(i) for i in range(50)))
    answered = [read_response(sock) for _ in range(50)]
    if answered != list(range(50)):
        fail("pipelined answers out of order: %s" % answered)
    sock.close()
    print("in flight: 50 pipelined requests answered in order (cap 2)")


flood()
slow_sender()
steady_client_outlives_the_deadline()
idle_connection()
oversized_frame()
pipelined_requests()
kcat_round_trip("at-the-end", 50)
print("OK")
