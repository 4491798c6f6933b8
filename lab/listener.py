#!/usr/bin/env python3
"""Tiny TCP listener for the Portolan test lab (stdlib only, asyncio).

Usage:
    listener.py --bind IP --port N [--banner TEXT] [--port N2 [--banner TEXT2]] ...
                [--pidfile FILE] [--max-hold SECONDS]

Each --port opens one listening socket.  A --banner applies to the --port
that precedes it:
  * banner mode: on accept, send TEXT + "\\r\\n", then keep the connection
    open (discarding whatever the peer sends) until the peer closes it or
    --max-hold seconds (default 60) have passed.
  * silent mode (no --banner): accept and wait, same hold rules, send nothing.

The process never exits because of a client: every per-connection error is
swallowed.  It stops on SIGTERM/SIGINT.
"""

import argparse
import asyncio
import os
import resource
import signal
import sys


class PortAction(argparse.Action):
    def __call__(self, parser, ns, value, option_string=None):
        ns.ports.append({"port": value, "banner": None})


class BannerAction(argparse.Action):
    def __call__(self, parser, ns, value, option_string=None):
        if not ns.ports:
            parser.error("--banner must follow a --port")
        ns.ports[-1]["banner"] = value


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bind", required=True, help="IP address to bind")
    p.add_argument("--port", type=int, action=PortAction, dest="ports_dummy",
                   help="TCP port to listen on (repeatable)")
    p.add_argument("--banner", action=BannerAction, dest="banner_dummy",
                   help="banner line for the preceding --port")
    p.add_argument("--pidfile", help="write our pid here")
    p.add_argument("--max-hold", type=float, default=60.0,
                   help="close a connection after this many seconds (default 60)")
    p.add_argument("--backlog", type=int, default=4096)
    p.set_defaults(ports=[])
    ns = p.parse_args(argv)
    if not ns.ports:
        p.error("at least one --port is required")
    for entry in ns.ports:
        if not 0 < entry["port"] < 65536:
            p.error("bad port %d" % entry["port"])
    return ns


def raise_nofile():
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or hard > soft:
            target = hard if hard != resource.RLIM_INFINITY else 1 << 20
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        pass


def make_handler(banner, max_hold):
    payload = None if banner is None else (banner + "\r\n").encode("utf-8", "replace")

    async def hold(reader):
        # Read and discard until EOF (peer closed) or error.
        while True:
            data = await reader.read(4096)
            if not data:
                return

    async def handler(reader, writer):
        try:
            if payload is not None:
                writer.write(payload)
                await writer.drain()
            await asyncio.wait_for(hold(reader), timeout=max_hold)
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
        if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
            return
        msg = context.get("message", "")
        sys.stderr.write("listener: loop error: %s %r\n" % (msg, exc))

    loop.set_exception_handler(quiet_exception_handler)

    servers = []
    for entry in args.ports:
        srv = await asyncio.start_server(
            make_handler(entry["banner"], args.max_hold),
            host=args.bind, port=entry["port"], backlog=args.backlog,
            reuse_address=True)
        servers.append(srv)
        sys.stderr.write("listener: %s:%d %s\n" % (
            args.bind, entry["port"],
            "banner=%r" % entry["banner"] if entry["banner"] is not None else "silent"))

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
