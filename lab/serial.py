#!/usr/bin/env python3
"""A web server that serves one client at a time, for the Portolan test lab (stdlib only).

Usage:
    serial.py --bind IP --port N [--pidfile FILE] [--directory DIR]

Python's http.server with its single-threaded HTTPServer (not the ThreadingHTTPServer
that `python3 -m http.server` uses), as small embedded daemons are written: while one
client is connected, the others wait in the listen queue, unanswered, until it has sent
its request and been answered, or has gone away.  A client that connects and says nothing
holds the server for up to --idle seconds (default 30).  `nmap -sV` names it, after its
GetRequest probe, "SimpleHTTPServer" with Python's version.
"""

import argparse
import functools
import http.server
import os
import signal
import sys


class Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # quiet: the lab's logs stay small
        pass


def main(argv):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bind", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--pidfile")
    p.add_argument("--directory", default=os.getcwd())
    p.add_argument("--idle", type=float, default=30.0,
                   help="seconds a silent client may hold the server (default 30)")
    ns = p.parse_args(argv)
    Handler.timeout = ns.idle
    http.server.HTTPServer.allow_reuse_address = True
    server = http.server.HTTPServer(
        (ns.bind, ns.port), functools.partial(Handler, directory=ns.directory))
    if ns.pidfile:
        with open(ns.pidfile, "w") as f:
            f.write("%d\n" % os.getpid())
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
