#!/usr/bin/env python3
"""A small SMBv1 server for the Portolan lab (stdlib only, asyncio).

It speaks just enough SMBv1 (MS-CIFS, dialect "NT LM 0.12", no extended security)
for Nmap's smb-vuln-ms17-010 check:

  NEGOTIATE            picks "NT LM 0.12" (or answers 0xFFFF: no dialect in common);
                       user-level security, no signing, an 8-byte challenge
  SESSION_SETUP_ANDX   an anonymous (empty user name) login succeeds; any other
                       account gets STATUS_LOGON_FAILURE
  TREE_CONNECT_ANDX    IPC$ succeeds; any other share gets STATUS_BAD_NETWORK_NAME
  TRANSACTION          PeekNamedPipe (setup 0x0023) on FID 0 answers
                       STATUS_INSUFF_SERVER_RESOURCES in "unpatched" mode, as a
                       Windows without MS17-010 does, and STATUS_INVALID_HANDLE in
                       "patched" mode; any other transaction STATUS_INVALID_HANDLE
  NT_CREATE_ANDX       STATUS_ACCESS_DENIED (no pipes for an anonymous user)
  TREE_DISCONNECT, LOGOFF_ANDX   succeed
  anything else        STATUS_NOT_SUPPORTED

An SMB2 request (0xFE 'S' 'M' 'B'), a NetBIOS session request (port 139 style) or
a malformed message closes the connection: SMBv1 only, direct TCP (port 445) only.

Usage:
    smb1_ms17_010.py --bind IP --serve MODE=PORT [--serve MODE=PORT ...]
                     [--pidfile FILE] [--idle SECONDS]
MODE is "unpatched" or "patched".
"""

import argparse
import asyncio
import os
import signal
import struct
import sys
import time

SMB1_MAGIC = b"\xffSMB"
SMB2_MAGIC = b"\xfeSMB"
HEADER = struct.Struct("<4sBIBHH8sHHHHH")  # 32 bytes, MS-CIFS 2.2.3.1
MAX_MESSAGE = 1 << 17

# Commands (MS-CIFS 2.2.2.1).
SMB_COM_TRANSACTION = 0x25
SMB_COM_TREE_DISCONNECT = 0x71
SMB_COM_NEGOTIATE = 0x72
SMB_COM_SESSION_SETUP_ANDX = 0x73
SMB_COM_LOGOFF_ANDX = 0x74
SMB_COM_TREE_CONNECT_ANDX = 0x75
SMB_COM_NT_CREATE_ANDX = 0xA2

# NTSTATUS values (MS-ERREF 2.3.1).
STATUS_SUCCESS = 0x00000000
STATUS_INVALID_HANDLE = 0xC0000008
STATUS_ACCESS_DENIED = 0xC0000022
STATUS_LOGON_FAILURE = 0xC000006D
STATUS_NOT_SUPPORTED = 0xC00000BB
STATUS_BAD_NETWORK_NAME = 0xC00000CC
STATUS_INSUFF_SERVER_RESOURCES = 0xC0000205

FLAGS_REPLY = 0x80 | 0x10 | 0x08  # reply, canonical and caseless path names
FLAGS2_LONG_NAMES = 0x0001
FLAGS2_NT_STATUS = 0x4000
FLAGS2_UNICODE = 0x8000

TRANS_PEEK_NMPIPE = 0x0023
DIALECT = b"NT LM 0.12"
# Capabilities of an NT server without extended security: Unicode, large files,
# NT SMBs, RPC remote APIs, 32-bit status, level II oplocks, lock-and-read, NT find,
# DFS, info-level passthrough, large read/write.
CAPABILITIES = 0x0000F3FC
DOMAIN = "LAB"
SERVER = "SMB1-LAB"
NATIVE_OS = "Windows 7 Professional 7601 Service Pack 1"
NATIVE_LANMAN = "Windows 7 Professional 6.1"
FIRST_UID = 0x0800
FIRST_TID = 0x0800


class Malformed(Exception):
    """The peer sent something this server does not parse; the connection ends."""


class Request:
    """One parsed SMBv1 message."""

    def __init__(self, msg):
        if len(msg) < HEADER.size + 3:
            raise Malformed("short message")
        (magic, self.command, self.status, self.flags, self.flags2, self.pid_high,
         _sig, _reserved, self.tid, self.pid, self.uid, self.mid) = HEADER.unpack_from(msg)
        if magic != SMB1_MAGIC:
            raise Malformed("not SMBv1")
        wc = msg[HEADER.size]
        words_end = HEADER.size + 1 + 2 * wc
        if len(msg) < words_end + 2:
            raise Malformed("words past the end")
        self.words = msg[HEADER.size + 1:words_end]
        (bcc,) = struct.unpack_from("<H", msg, words_end)
        self.data_offset = words_end + 2
        # Some clients (Nmap's ms17-010 probe among them) miscount the bytes: take
        # what is there, up to the count.
        self.data = msg[self.data_offset:self.data_offset + bcc]
        self.unicode = bool(self.flags2 & FLAGS2_UNICODE)


def filetime_now():
    return (int(time.time()) + 11644473600) * 10_000_000


def smb_string(text, unicode, offset):
    """A null-terminated string placed at `offset` from the header's start."""
    if not unicode:
        return text.encode("ascii", "replace") + b"\0"
    pad = b"\0" if offset % 2 else b""
    return pad + text.encode("utf-16-le") + b"\0\0"


def read_string(req, start):
    """The null-terminated string at `start` of the data section, in the request's
    encoding; Unicode strings are aligned to two bytes from the header's start."""
    data = req.data
    if not req.unicode:
        end = data.find(b"\0", start)
        return data[start:end if end >= 0 else len(data)].decode("latin-1")
    if (req.data_offset + start) % 2:
        start += 1
    end = start
    while end + 1 < len(data) and data[end:end + 2] != b"\0\0":
        end += 2
    return data[start:end].decode("utf-16-le", "replace")


class Connection:
    def __init__(self, mode):
        self.mode = mode
        self.uid = 0
        self.tid = 0

    def reply(self, req, status, words=b"", data=b"", flags2=None, tid=None, uid=None):
        if flags2 is None:
            flags2 = FLAGS2_LONG_NAMES | FLAGS2_NT_STATUS | (req.flags2 & FLAGS2_UNICODE)
        header = HEADER.pack(SMB1_MAGIC, req.command, status, FLAGS_REPLY, flags2,
                             req.pid_high, b"\0" * 8, 0,
                             req.tid if tid is None else tid, req.pid,
                             req.uid if uid is None else uid, req.mid)
        return (header + bytes([len(words) // 2]) + words
                + struct.pack("<H", len(data)) + data)

    def error(self, req, status):
        return self.reply(req, status)

    def answer(self, req):
        handler = {
            SMB_COM_NEGOTIATE: self.negotiate,
            SMB_COM_SESSION_SETUP_ANDX: self.session_setup,
            SMB_COM_TREE_CONNECT_ANDX: self.tree_connect,
            SMB_COM_TRANSACTION: self.transaction,
            SMB_COM_TREE_DISCONNECT: self.tree_disconnect,
            SMB_COM_LOGOFF_ANDX: self.logoff,
            SMB_COM_NT_CREATE_ANDX: self.nt_create,
        }.get(req.command)
        if handler is None:
            return self.error(req, STATUS_NOT_SUPPORTED)
        return handler(req)

    def negotiate(self, req):
        dialects = req.data.split(b"\0")
        names = [d[1:] for d in dialects if d[:1] == b"\x02"]
        if DIALECT not in names:
            return self.reply(req, STATUS_SUCCESS, struct.pack("<H", 0xFFFF))
        challenge = os.urandom(8)
        words = struct.pack("<HBHHIIIIqhB",
                            names.index(DIALECT),
                            0x03,        # user-level security, challenge/response
                            50,          # max multiplexed requests
                            1,           # max virtual circuits
                            16644,       # max buffer size
                            65536,       # max raw size
                            0,           # session key
                            CAPABILITIES,
                            filetime_now(),
                            0,           # time zone: UTC
                            len(challenge))
        # The names follow the challenge without alignment padding (MS-CIFS 2.2.4.52.2).
        names = (DOMAIN + "\0" + SERVER + "\0").encode("utf-16-le")
        flags2 = FLAGS2_LONG_NAMES | FLAGS2_NT_STATUS | FLAGS2_UNICODE
        return self.reply(req, STATUS_SUCCESS, words, challenge + names, flags2)

    def session_setup(self, req):
        if len(req.words) < 26:
            raise Malformed("short SESSION_SETUP_ANDX")
        lm_len, nt_len = struct.unpack_from("<HH", req.words, 14)
        account = read_string(req, lm_len + nt_len)
        if account:
            return self.error(req, STATUS_LOGON_FAILURE)
        self.uid = FIRST_UID
        offset = HEADER.size + 1 + 6 + 2
        data = b""
        for text in (NATIVE_OS, NATIVE_LANMAN, DOMAIN):
            data += smb_string(text, req.unicode, offset + len(data))
        words = struct.pack("<BBHH", 0xFF, 0, 0, 0)  # no AndX; action 0: not as guest
        return self.reply(req, STATUS_SUCCESS, words, data, uid=self.uid)

    def tree_connect(self, req):
        if len(req.words) < 8:
            raise Malformed("short TREE_CONNECT_ANDX")
        if self.uid == 0 or req.uid != self.uid:
            return self.error(req, STATUS_INVALID_HANDLE)
        (password_len,) = struct.unpack_from("<H", req.words, 6)
        path = read_string(req, password_len)
        share = path.rsplit("\\", 1)[-1].upper()
        if share != "IPC$":
            return self.error(req, STATUS_BAD_NETWORK_NAME)
        self.tid = FIRST_TID
        words = struct.pack("<BBHH", 0xFF, 0, 0, 0x0001)  # OptionalSupport: search bits
        offset = HEADER.size + 1 + len(words) + 2 + 4
        data = b"IPC\0" + smb_string("", req.unicode, offset)
        return self.reply(req, STATUS_SUCCESS, words, data, tid=self.tid)

    def transaction(self, req):
        # 14 fixed words (MS-CIFS 2.2.4.33.1), then SetupCount setup words.
        if len(req.words) < 28:
            raise Malformed("short TRANSACTION")
        setup_count = req.words[26]
        setup = req.words[28:28 + 2 * setup_count]
        if len(setup) >= 4:
            function, fid = struct.unpack_from("<HH", setup)
            if function == TRANS_PEEK_NMPIPE and fid == 0 and self.mode == "unpatched":
                # The unpatched srv.sys treats FID 0 as a pipe and runs out of room.
                return self.error(req, STATUS_INSUFF_SERVER_RESOURCES)
        return self.error(req, STATUS_INVALID_HANDLE)

    def nt_create(self, req):
        # No pipe or file opens for an anonymous user (RestrictAnonymous).
        return self.error(req, STATUS_ACCESS_DENIED)

    def tree_disconnect(self, req):
        self.tid = 0
        return self.reply(req, STATUS_SUCCESS, tid=0)

    def logoff(self, req):
        self.uid = 0
        return self.reply(req, STATUS_SUCCESS, struct.pack("<BBH", 0xFF, 0, 0), uid=0)


async def read_message(reader):
    """One message from the direct-TCP transport: a zero byte, then a 24-bit length."""
    head = await reader.readexactly(4)
    length = int.from_bytes(head[1:], "big")
    if head[0] != 0 or length > MAX_MESSAGE:
        raise Malformed("not a session message")
    return await reader.readexactly(length)


def make_handler(mode, idle):
    async def handler(reader, writer):
        conn = Connection(mode)
        try:
            while True:
                msg = await asyncio.wait_for(read_message(reader), timeout=idle)
                if msg[:4] == SMB2_MAGIC:
                    break
                out = conn.answer(Request(msg))
                writer.write(len(out).to_bytes(4, "big") + out)
                await writer.drain()
        except (Malformed, asyncio.IncompleteReadError, asyncio.TimeoutError,
                ConnectionError, OSError, struct.error):
            pass
        finally:
            writer.close()

    return handler


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bind", required=True, help="IP address to bind")
    p.add_argument("--serve", action="append", required=True, metavar="MODE=PORT",
                   help="unpatched=PORT or patched=PORT (repeatable)")
    p.add_argument("--pidfile", help="write our pid here")
    p.add_argument("--idle", type=float, default=30.0,
                   help="close a connection idle this many seconds (default 30)")
    args = p.parse_args(argv)
    args.servers = []
    for spec in args.serve:
        mode, _, port = spec.partition("=")
        if mode not in ("unpatched", "patched") or not port.isdigit() \
                or not 0 < int(port) < 65536:
            p.error("bad --serve %r (want unpatched=PORT or patched=PORT)" % spec)
        args.servers.append((mode, int(port)))
    return args


async def main_async(args):
    servers = []
    for mode, port in args.servers:
        servers.append(await asyncio.start_server(make_handler(mode, args.idle),
                                                  host=args.bind, port=port,
                                                  reuse_address=True))
        sys.stderr.write("smb1: %s:%d %s\n" % (args.bind, port, mode))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if args.pidfile:
        with open(args.pidfile, "w") as f:
            f.write("%d\n" % os.getpid())
    sys.stderr.flush()
    await stop.wait()
    for srv in servers:
        srv.close()


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
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
