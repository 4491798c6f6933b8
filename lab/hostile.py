#!/usr/bin/env python3
"""Hostile TCP services for the Portolan test lab (stdlib only, asyncio).

Usage:
    hostile.py --bind IP --serve MODE=PORT [--serve MODE=PORT ...]
               [--pidfile FILE] [--max-hold SECONDS]

One process, one listening socket per --serve.  Modes:

  stream       on accept, send 64 KiB chunks of repeating text, forever, as
               fast as the peer reads (flow control via drain).
  silent       accept, never send, never close.
  garbage      send 4 KiB of binary garbage (invalid UTF-8, NUL bytes,
               control and escape characters), then keep the connection open.
  tls-garbage  wait for the peer's first bytes (a TLS ClientHello is read to
               the end of its record), then answer with bytes that start like
               a TLS handshake record header but are garbage, then keep the
               connection open.  Any other first bytes get the same answer.
  close        accept and close at once (FIN), without sending anything.

Every mode that keeps a connection open discards what the peer sends and ends
the connection when the peer closes it or --max-hold seconds (default 60)
have passed, so a stuck client cannot pin the process forever.  The garbage
is generated from a fixed seed: every connection gets the same bytes.

The process never exits because of a client: every per-connection error is
swallowed.  It stops on SIGTERM/SIGINT.
"""

import argparse
import asyncio
import os
import random
import resource
import signal
import sys

MODES = ("stream", "silent", "garbage", "tls-garbage", "close")
CHUNK = 64 * 1024


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bind", required=True, help="IP address to bind")
    p.add_argument("--serve", action="append", default=[], metavar="MODE=PORT",
                   help="serve MODE on TCP PORT (repeatable); modes: " + ", ".join(MODES))
    p.add_argument("--pidfile", help="write our pid here")
    p.add_argument("--max-hold", type=float, default=60.0,
                   help="close a held connection after this many seconds (default 60)")
    p.add_argument("--backlog", type=int, default=4096)
    ns = p.parse_args(argv)
    if not ns.serve:
        p.error("at least one --serve MODE=PORT is required")
    ns.services = []
    for spec in ns.serve:
        mode, sep, port = spec.partition("=")
        if not sep or mode not in MODES:
            p.error("bad --serve %r (want MODE=PORT, MODE one of %s)" % (spec, ", ".join(MODES)))
        try:
            port = int(port)
        except ValueError:
            p.error("bad port in --serve %r" % spec)
        if not 0 < port < 65536:
            p.error("bad port %d" % port)
        ns.services.append((mode, port))
    return ns


def raise_nofile():
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or hard > soft:
            target = hard if hard != resource.RLIM_INFINITY else 1 << 20
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        pass


# ---------------------------------------------------------------- payloads --

def stream_chunk():
    line = b"PORTOLAN-LAB stream 0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n"
    return (line * (CHUNK // len(line) + 1))[:CHUNK]


def garbage_payload():
    rng = random.Random(0x504C4142)  # fixed: same bytes on every connection
    nasty = [
        b"\xff\xfe\xfd",              # never valid in UTF-8
        b"\xc3\x28",                  # bad continuation byte
        b"\x80\x81\xbf",              # lone continuation bytes
        b"\xc0\xaf\xe0\x80\xaf",      # overlong encodings of '/'
        b"\xed\xa0\x80\xed\xbf\xbf",  # UTF-16 surrogates encoded in UTF-8
        b"\xf4\x90\x80\x80",          # beyond U+10FFFF
        b"\xf0\x9f\x98",              # truncated 4-byte sequence
        b"\0\0\0\0",                  # NULs
        b"\x1b[2J\x1b[H\x1b]0;pwned\x07",  # terminal escapes: clear, home, set title
        b"\x07\x08\x08\x08\x7f\x0b\x0c",   # bell, backspaces, DEL, VT, FF
        b"\r\r\r",                    # bare CRs
        b"\r\n",
        b"<>&\"'%s%n%x\\",            # markup and format-string bait
    ]
    out = bytearray(b"\0\xff\x1b[0m")
    while len(out) < 4096:
        if rng.random() < 0.5:
            out += rng.choice(nasty)
        else:
            out += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 24)))
    return bytes(out)


def tls_garbage_payload():
    rng = random.Random(0x544C5321)
    body = bytearray()
    # Looks like a ServerHello (handshake type 2) whose length (0xffffff) is
    # absurd and bears no relation to the record, then noise.
    body += b"\x02\xff\xff\xff\x03\x03"
    body += bytes(rng.randrange(256) for _ in range(1018))
    record = b"\x16\x03\x03" + len(body).to_bytes(2, "big") + bytes(body)
    # A second "record" with an unknown content type, a bogus version and a
    # length (0x4000) far beyond the bytes that follow.
    record += b"\x99\x7f\x01\x40\x00" + bytes(rng.randrange(256) for _ in range(64))
    return record


STREAM_CHUNK = stream_chunk()
GARBAGE = garbage_payload()
TLS_GARBAGE = tls_garbage_payload()


# ---------------------------------------------------------------- handlers --

async def discard(reader):
    """Read and drop until EOF (peer closed) or error."""
    while True:
        data = await reader.read(4096)
        if not data:
            return


async def read_first(reader, timeout):
    """First bytes from the peer; a TLS record is read to its end (capped)."""
    data = await reader.read(4096)
    if len(data) >= 5 and data[0] == 0x16:
        want = 5 + min(int.from_bytes(data[3:5], "big"), 1 << 14)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while data and len(data) < want:
            left = deadline - loop.time()
            if left <= 0:
                break
            more = await asyncio.wait_for(reader.read(want - len(data)), timeout=left)
            if not more:
                break
            data += more
    return data


async def do_stream(reader, writer):
    drain_task = asyncio.ensure_future(discard(reader))
    try:
        while not drain_task.done():
            writer.write(STREAM_CHUNK)
            await writer.drain()
    finally:
        drain_task.cancel()


async def do_garbage(reader, writer):
    writer.write(GARBAGE)
    await writer.drain()
    await discard(reader)


async def do_tls_garbage(reader, writer, max_hold):
    first = await read_first(reader, max_hold)
    if not first:
        return  # peer closed without sending anything
    writer.write(TLS_GARBAGE)
    await writer.drain()
    await discard(reader)


def make_handler(mode, max_hold):
    async def handler(reader, writer):
        try:
            if mode == "close":
                return
            if mode == "stream":
                coro = do_stream(reader, writer)
            elif mode == "silent":
                coro = discard(reader)
            elif mode == "garbage":
                coro = do_garbage(reader, writer)
            else:
                coro = do_tls_garbage(reader, writer, max_hold)
            await asyncio.wait_for(coro, timeout=max_hold)
        except BaseException as exc:  # never let a client kill us
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
        finally:
            try:
                writer.close()
            except Exception:
                pass

    return handler


async def main_async(args):
    loop = asyncio.get_running_loop()

    def quiet_exception_handler(loop, context):
        exc = context.get("exception")
        if isinstance(exc, (ConnectionError, TimeoutError, OSError, asyncio.CancelledError)):
            return
        msg = context.get("message", "")
        sys.stderr.write("hostile: loop error: %s %r\n" % (msg, exc))

    loop.set_exception_handler(quiet_exception_handler)

    servers = []
    for mode, port in args.services:
        srv = await asyncio.start_server(
            make_handler(mode, args.max_hold),
            host=args.bind, port=port, backlog=args.backlog, reuse_address=True)
        servers.append(srv)
        sys.stderr.write("hostile: %s:%d %s\n" % (args.bind, port, mode))

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    try:
        loop.add_signal_handler(signal.SIGHUP, lambda: None)  # survive terminal hangup
    except (NotImplementedError, RuntimeError):
        pass

    if args.pidfile:
        with open(args.pidfile, "w") as f:
            f.write("%d\n" % os.getpid())
    sys.stderr.flush()

    await stop.wait()
    for srv in servers:
        srv.close()


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    raise_nofile()
    try:
        asyncio.run(main_async(args))
    finally:
        if args.pidfile:
            try:
                os.unlink(args.pidfile)
            except OSError:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
