#!/usr/bin/env python3
"""An independent HTTP/3 client (aioquic) for the gateway's end-to-end tests and bench.

Connects to --connect HOST:PORT over QUIC with --host as SNI and :authority, verifies the
server against --cacert, optionally presents --cert/--key, sends the request --count times
(--concurrency at once), and prints one JSON object: the last response (status, headers,
body length and SHA-256, the start of the body) and, for several requests, timings.
"""
import argparse
import asyncio
import hashlib
import json
import ssl
import sys
import time

from aioquic.asyncio import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ConnectionTerminated

BODY_PREVIEW = 65536


class Response:
    def __init__(self):
        self.status = None
        self.headers = {}
        self.trailers = {}
        self.length = 0
        self.digest = hashlib.sha256()
        self.preview = bytearray()

    def as_json(self):
        return {
            "status": self.status,
            "headers": self.headers,
            "trailers": self.trailers,
            "body_len": self.length,
            "body_sha256": self.digest.hexdigest(),
            "body": self.preview.decode("utf-8", "replace"),
        }


class Client(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic)
        self.pending = {}

    def quic_event_received(self, event):
        if isinstance(event, ConnectionTerminated):
            for response, done in self.pending.values():
                if not done.done():
                    done.set_exception(
                        ConnectionError(
                            f"connection closed: error_code={event.error_code:#x} {event.reason_phrase}"
                        )
                    )
            return
        for h3_event in self.h3.handle_event(event):
            entry = self.pending.get(h3_event.stream_id)
            if entry is None:
                continue
            response, done = entry
            if isinstance(h3_event, HeadersReceived):
                fields = {k.decode(): v.decode() for k, v in h3_event.headers}
                if response.status is None:
                    response.status = int(fields.pop(":status", "0"))
                    response.headers = fields
                else:
                    response.trailers = fields
            elif isinstance(h3_event, DataReceived):
                response.length += len(h3_event.data)
                response.digest.update(h3_event.data)
                room = BODY_PREVIEW - len(response.preview)
                if room > 0:
                    response.preview.extend(h3_event.data[:room])
            if getattr(h3_event, "stream_ended", False) and not done.done():
                done.set_result(response)

    async def request(self, method, authority, path, headers, body):
        stream_id = self._quic.get_next_available_stream_id()
        fields = [
            (b":method", method.encode()),
            (b":scheme", b"https"),
            (b":authority", authority.encode()),
            (b":path", path.encode()),
        ] + [(k.lower().encode(), v.encode()) for k, v in headers]
        done = asyncio.get_running_loop().create_future()
        self.pending[stream_id] = (Response(), done)
        self.h3.send_headers(stream_id, fields, end_stream=body is None)
        if body is not None:
            self.h3.send_data(stream_id, body, end_stream=True)
        self.transmit()
        try:
            return await done
        finally:
            self.pending.pop(stream_id, None)


def body_of(args):
    if args.data_size is None:
        return None
    # A repeating, position-dependent pattern: a truncated or reordered body changes the hash.
    pattern = bytes(range(256)) * 4096
    out = bytearray()
    while len(out) < args.data_size:
        out.extend(pattern[: args.data_size - len(out)])
    return bytes(out)


async def main(args):
    host, port = args.connect.rsplit(":", 1)
    configuration = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN)
    configuration.server_name = args.host
    configuration.load_verify_locations(args.cacert)
    configuration.verify_mode = ssl.CERT_REQUIRED
    if args.cert:
        configuration.load_cert_chain(args.cert, args.key)
    body = body_of(args)
    headers = [tuple(h.split(":", 1)) for h in args.header]
    headers = [(k.strip(), v.strip()) for k, v in headers]
    authority = args.authority or args.host
    timings = []
    failures = 0
    last = None
    async with connect(
        host, int(port), configuration=configuration, create_protocol=Client, wait_connected=True
    ) as client:
        semaphore = asyncio.Semaphore(args.concurrency)

        async def one():
            nonlocal last, failures
            async with semaphore:
                started = time.perf_counter()
                try:
                    last = await asyncio.wait_for(
                        client.request(args.method, authority, args.path, headers, body), args.timeout
                    )
                    timings.append(time.perf_counter() - started)
                except Exception as error:  # noqa: BLE001 - reported, not hidden
                    failures += 1
                    last_error[0] = repr(error)

        last_error = [None]
        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(args.count)))
        elapsed = time.perf_counter() - started
    out = last.as_json() if last is not None else {"status": None, "error": last_error[0]}
    if args.count > 1:
        timings.sort()
        out["requests"] = len(timings)
        out["failures"] = failures
        out["elapsed_s"] = elapsed
        out["rps"] = len(timings) / elapsed if elapsed > 0 else 0.0
        if timings:
            out["p50_ms"] = timings[len(timings) // 2] * 1000
            out["p99_ms"] = timings[min(len(timings) - 1, int(len(timings) * 0.99))] * 1000
    print(json.dumps(out))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--connect", required=True, help="address:port to send UDP to")
    parser.add_argument("--host", required=True, help="SNI and :authority")
    parser.add_argument("--authority", help=":authority when it differs from the SNI")
    parser.add_argument("--cacert", required=True)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--method", default="GET")
    parser.add_argument("--header", action="append", default=[], help="name: value")
    parser.add_argument("--data-size", type=int, help="send a body of this many bytes")
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=20.0)
    parser.add_argument("path", nargs="?", default="/")
    try:
        asyncio.run(main(parser.parse_args()))
    except Exception as error:  # noqa: BLE001 - the test reads the reason
        print(json.dumps({"status": None, "error": repr(error)}))
        sys.exit(0)
