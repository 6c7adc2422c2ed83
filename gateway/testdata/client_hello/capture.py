#!/usr/bin/env python3
"""Capture real TLS ClientHellos from local clients into *.bin files.

Throw-away tooling, kept so the fixtures can be re-made. For each client a one-shot
server on 127.0.0.1 accepts a single connection, reads TLS records until the whole
ClientHello handshake message has arrived (it may span several records), writes exactly
those records to <name>.bin and closes the connection, so no handshake ever completes.
Nothing leaves loopback.

Usage: python3 capture.py [OUT_DIR] [--only NAME ...]
"""

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading

HANDSHAKE = 22
RECORD_HEADER = 5
CAPTURE_TIMEOUT_S = 20

# Go's crypto/tls as a real second stack. Written to a temp dir and run with `go run`.
GO_CLIENT = r"""
package main

import (
	"crypto/tls"
	"os"
)

func main() {
	conf := &tls.Config{
		ServerName:         "outbound_.15443_._.details.bookinfo.svc.cluster.local",
		NextProtos:         []string{"istio-h2", "istio"},
		InsecureSkipVerify: true,
	}
	conn, err := tls.Dial("tcp", "127.0.0.1:"+os.Args[1], conf)
	if err == nil {
		conn.Close()
	}
}
"""


def read_exact(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise EOFError(f"peer closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def read_client_hello(conn):
    """Returns the raw records that carry the first handshake message."""
    raw = b""
    payload = b""
    needed = None
    while needed is None or len(payload) < needed:
        header = read_exact(conn, RECORD_HEADER)
        if header[0] != HANDSHAKE:
            raise ValueError(f"record type {header[0]} is not a handshake record")
        length = int.from_bytes(header[3:5], "big")
        raw += header + read_exact(conn, length)
        payload += raw[-length:]
        if needed is None and len(payload) >= 4:
            needed = 4 + int.from_bytes(payload[1:4], "big")
    return raw


def one_shot_server(out_path, ready, result):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        server.settimeout(CAPTURE_TIMEOUT_S)
        result["port"] = server.getsockname()[1]
        ready.set()
        try:
            conn, _ = server.accept()
        except socket.timeout:
            result["error"] = "no connection"
            return
        with conn:
            conn.settimeout(CAPTURE_TIMEOUT_S)
            try:
                hello = read_client_hello(conn)
            except (OSError, EOFError, ValueError) as err:
                result["error"] = str(err)
                return
        with open(out_path, "wb") as out:
            out.write(hello)
        result["bytes"] = len(hello)


def capture(name, out_dir, client_argv_for_port, env=None):
    out_path = os.path.join(out_dir, f"{name}.bin")
    ready, result = threading.Event(), {}
    server = threading.Thread(target=one_shot_server, args=(out_path, ready, result))
    server.start()
    ready.wait()
    argv = client_argv_for_port(result["port"])
    client = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    server.join()
    client.kill()
    client.wait()
    if "error" in result:
        print(f"{name}: FAILED ({result['error']})", file=sys.stderr)
        return False
    print(f"{name}: {result['bytes']} bytes -> {out_path}")
    return True


def python_client(port):
    code = (
        "import socket, ssl\n"
        "ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)\n"
        "ctx.check_hostname = False\n"
        "ctx.verify_mode = ssl.CERT_NONE\n"
        "ctx.set_alpn_protocols(['istio-peer-exchange', 'istio'])\n"
        f"sock = socket.create_connection(('127.0.0.1', {port}))\n"
        "try:\n"
        "    ctx.wrap_socket(sock, server_hostname="
        "'outbound_.9080_._.ratings.default.svc.cluster.local')\n"
        "except OSError:\n"
        "    pass\n"
    )
    return [sys.executable, "-c", code]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out_dir", nargs="?", default=os.path.dirname(os.path.abspath(__file__)))
    parser.add_argument("--only", nargs="*")
    args = parser.parse_args()
    wanted = lambda name: not args.only or name in args.only  # noqa: E731
    ok = True

    if wanted("curl"):
        host = "curl.isthmus.test"
        ok &= capture(
            "curl",
            args.out_dir,
            lambda p: ["curl", "-sk", "--max-time", "5", f"https://{host}:{p}/",
                       "--resolve", f"{host}:{p}:127.0.0.1"],
        )
    if wanted("openssl"):
        ok &= capture(
            "openssl",
            args.out_dir,
            lambda p: ["openssl", "s_client", "-connect", f"127.0.0.1:{p}",
                       "-servername", "outbound_.9080_.v1_.reviews.default.svc.cluster.local",
                       "-alpn", "istio,istio-http/1.1"],
        )
    if wanted("openssl_fragmented"):
        # OpenSSL's smallest send fragment is 512 bytes; a long ALPN list pushes the hello
        # past that, so OpenSSL itself splits the ClientHello across several records.
        alpn = ",".join(["istio-http/1.1", "istio"] + [f"x-padding-protocol-{i:02}" for i in range(40)])
        ok &= capture(
            "openssl_fragmented",
            args.out_dir,
            lambda p: ["openssl", "s_client", "-connect", f"127.0.0.1:{p}",
                       "-servername", "fragmented.isthmus.test", "-alpn", alpn,
                       "-max_send_frag", "512"],
        )
    if wanted("python"):
        ok &= capture("python", args.out_dir, python_client)
    if wanted("go"):
        if shutil.which("go"):
            work = tempfile.mkdtemp(prefix="capture-go-")
            src = os.path.join(work, "hello.go")
            with open(src, "w") as f:
                f.write(GO_CLIENT)
            exe = os.path.join(work, "hello")
            env = dict(os.environ, GOCACHE=os.path.join(work, "cache"), GOFLAGS="-mod=mod",
                       GO111MODULE="off")
            subprocess.run(["go", "build", "-o", exe, src], check=True, env=env)
            ok &= capture("go", args.out_dir, lambda p: [exe, str(p)])
            shutil.rmtree(work)
        else:
            print("go: not installed, skipped", file=sys.stderr)
    if wanted("chromium"):
        if shutil.which("chromium"):
            profile = tempfile.mkdtemp(prefix="capture-chromium-")
            host = "chromium.isthmus.test"
            ok &= capture(
                "chromium",
                args.out_dir,
                lambda p: ["chromium", "--headless", "--no-sandbox", "--disable-gpu",
                           "--disable-quic", "--no-first-run", "--disable-background-networking",
                           "--disable-component-update", "--disable-sync",
                           f"--user-data-dir={profile}",
                           f"--host-resolver-rules=MAP {host} 127.0.0.1",
                           "--dump-dom", f"https://{host}:{p}/"],
            )
            shutil.rmtree(profile, ignore_errors=True)
        else:
            print("chromium: not installed, skipped", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
