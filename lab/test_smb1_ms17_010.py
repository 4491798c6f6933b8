#!/usr/bin/env python3
"""Tests for lab/smb1_ms17_010.py, over loopback only.

    python3 -m unittest discover -s lab -p 'test_*.py'

A small client built here from MS-CIFS sends the same sequence as Nmap's
smb-vuln-ms17-010 (NEGOTIATE, anonymous SESSION_SETUP_ANDX, TREE_CONNECT_ANDX to
IPC$, TRANSACTION PeekNamedPipe on FID 0) and checks each answer.
"""

import asyncio
import os
import socket
import struct
import sys
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import smb1_ms17_010 as smb1  # noqa: E402

FLAGS2 = 0x4000 | 0x0001  # NT status codes, long names; ASCII strings


class Server:
    """The service on 127.0.0.1, on a port the kernel picks, in its own thread."""

    def __init__(self, mode):
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def start():
            self.server = await asyncio.start_server(
                smb1.make_handler(mode, idle=5.0), host="127.0.0.1", port=0)
            self.port = self.server.sockets[0].getsockname()[1]
            ready.set()

        self.thread = threading.Thread(
            target=lambda: (self.loop.run_until_complete(start()), self.loop.run_forever()),
            daemon=True)
        self.thread.start()
        if not ready.wait(5):
            raise RuntimeError("server did not start")

    def stop(self):
        async def shutdown():
            self.server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


class Client:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.uid = 0
        self.tid = 0
        self.mid = 0

    def close(self):
        self.sock.close()

    def send(self, command, words=b"", data=b""):
        self.mid += 1
        header = smb1.HEADER.pack(smb1.SMB1_MAGIC, command, 0, 0x18, FLAGS2, 0, b"\0" * 8,
                                  0, self.tid, 4242, self.uid, self.mid)
        msg = header + bytes([len(words) // 2]) + words + struct.pack("<H", len(data)) + data
        self.sock.sendall(len(msg).to_bytes(4, "big") + msg)

    def recv_raw(self):
        head = self.recv_exactly(4)
        return self.recv_exactly(int.from_bytes(head[1:], "big"))

    def recv(self):
        """(command, status, tid, uid, mid, words, data) of the next answer."""
        msg = self.recv_raw()
        (magic, command, status, flags, _f2, _ph, _sig, _r, tid, pid, uid,
         mid) = smb1.HEADER.unpack_from(msg)
        assert magic == smb1.SMB1_MAGIC and flags & 0x80 and pid == 4242
        wc = msg[32]
        words = msg[33:33 + 2 * wc]
        (bcc,) = struct.unpack_from("<H", msg, 33 + 2 * wc)
        data = msg[35 + 2 * wc:]
        assert len(data) == bcc, (len(data), bcc)
        return command, status, tid, uid, mid, words, data

    def recv_exactly(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
        return buf

    def negotiate(self, dialects=(b"NT LM 0.12",)):
        self.send(smb1.SMB_COM_NEGOTIATE, data=b"".join(b"\x02" + d + b"\0" for d in dialects))
        return self.recv()

    def session_setup(self, account=""):
        words = struct.pack("<BBHHHHIHHII", 0xFF, 0, 0, 0xFFFF, 1, 1, 0, 0, 0, 0, 0x50)
        self.send(smb1.SMB_COM_SESSION_SETUP_ANDX, words,
                  account.encode() + b"\0" + b"\0" + b"Nmap\0Native Lanman\0")
        answer = self.recv()
        if answer[1] == 0:
            self.uid = answer[3]
        return answer

    def tree_connect(self, share):
        words = struct.pack("<BBHHH", 0xFF, 0, 0, 0, 0)
        self.send(smb1.SMB_COM_TREE_CONNECT_ANDX, words,
                  b"\\\\127.0.0.1\\" + share.encode() + b"\0?????\0")
        answer = self.recv()
        if answer[1] == 0:
            self.tid = answer[2]
        return answer

    def peek_named_pipe(self, fid):
        # The 14 fixed TRANSACTION words, then the two setup words: function, FID.
        words = struct.pack("<HHHHBBHIHHHHHBB", 0, 0, 0xFFFF, 0xFFFF, 0, 0, 0, 0, 0,
                            0, 74, 0, 74, 2, 0) + struct.pack("<HH", 0x0023, fid)
        self.send(smb1.SMB_COM_TRANSACTION, words, b"\\PIPE\\\0")
        return self.recv()


class Smb1Test(unittest.TestCase):
    def start(self, mode):
        server = Server(mode)
        self.addCleanup(server.stop)
        client = Client(server.port)
        self.addCleanup(client.close)
        return client

    def connect_ipc(self, client):
        command, status, _, _, _, words, data = client.negotiate()
        self.assertEqual((command, status), (smb1.SMB_COM_NEGOTIATE, 0))
        self.assertEqual(len(words), 34)
        dialect, security_mode = struct.unpack_from("<HB", words)
        self.assertEqual((dialect, security_mode), (0, 0x03))
        challenge_len = words[33]
        self.assertEqual(challenge_len, 8)
        names = data[8:].decode("utf-16-le").split("\0")
        self.assertEqual(names[:2], [smb1.DOMAIN, smb1.SERVER])
        _, status, _, uid, _, _, data = client.session_setup()
        self.assertEqual(status, 0)
        self.assertNotEqual(uid, 0)
        self.assertEqual(data.split(b"\0")[:2],
                         [smb1.NATIVE_OS.encode(), smb1.NATIVE_LANMAN.encode()])
        _, status, tid, _, _, _, data = client.tree_connect("IPC$")
        self.assertEqual(status, 0)
        self.assertNotEqual(tid, 0)
        self.assertTrue(data.startswith(b"IPC\0"))

    def test_unpatched_answers_peek_on_fid_0_with_insuff_server_resources(self):
        client = self.start("unpatched")
        self.connect_ipc(client)
        command, status, _, _, mid, _, _ = client.peek_named_pipe(0)
        self.assertEqual(command, smb1.SMB_COM_TRANSACTION)
        self.assertEqual(status, smb1.STATUS_INSUFF_SERVER_RESOURCES)
        self.assertEqual(mid, client.mid)
        # Another FID is just a bad handle.
        self.assertEqual(client.peek_named_pipe(7)[1], smb1.STATUS_INVALID_HANDLE)

    def test_patched_answers_peek_on_fid_0_with_invalid_handle(self):
        client = self.start("patched")
        self.connect_ipc(client)
        self.assertEqual(client.peek_named_pipe(0)[1], smb1.STATUS_INVALID_HANDLE)

    def test_named_accounts_and_other_shares_are_refused(self):
        client = self.start("unpatched")
        client.negotiate()
        self.assertEqual(client.session_setup("guest")[1], smb1.STATUS_LOGON_FAILURE)
        self.assertEqual(client.session_setup("")[1], 0)
        self.assertEqual(client.tree_connect("C$")[1], smb1.STATUS_BAD_NETWORK_NAME)
        self.assertEqual(client.tree_connect("ipc$")[1], 0)

    def test_no_common_dialect_and_unknown_commands(self):
        client = self.start("unpatched")
        _, status, _, _, _, words, _ = client.negotiate((b"PC NETWORK PROGRAM 1.0",))
        self.assertEqual((status, words), (0, b"\xff\xff"))
        client.send(0x2F)  # WRITE_ANDX: not spoken here
        self.assertEqual(client.recv()[1], smb1.STATUS_NOT_SUPPORTED)

    def test_smb2_and_garbage_close_the_connection(self):
        for message in (b"\xfeSMB" + b"\0" * 60, b"\x81\0\0\x04abcd", b"\xffSMB"):
            client = self.start("unpatched")
            if message[0] == 0x81:
                client.sock.sendall(message)
            else:
                client.sock.sendall(len(message).to_bytes(4, "big") + message)
            with self.assertRaises(ConnectionError):
                client.recv_raw()


if __name__ == "__main__":
    unittest.main()
