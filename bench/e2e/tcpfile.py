#!/usr/bin/python3
"""One file over one TCP or MPTCP connection, the way a file-transfer tool does it: the baseline of
bench/e2e/filexfer.py.

    tcpfile.py recv --port P --out PATH [--mptcp] [--timeout S]     # prints "tcpfile: ready" on stderr
    tcpfile.py send --host H --port P --file PATH [--mptcp] [--timeout S]

Why not `iperf3 -F`: iperf3 3.12's client ends the test once it has written the file into its socket, and
the server stops reading at the test's end, so the bytes still in flight are never written (5 MB sent,
3.9 MB in the server's file, measured on the test bed); its time is the client's write time, not the
transfer's. Here the sender sends the file with sendfile(2), shuts its side down and waits until the
receiver has closed, and the receiver writes every byte to PATH and fsyncs it (as `mpxdp recv -F` does)
before it closes. Each side prints one JSON object: bytes, seconds, and the receiver's write and fsync time.
MPTCP is a socket of protocol IPPROTO_MPTCP (262), the kernel's own, as `mptcpize` makes of a TCP socket.
"""
import argparse
import json
import os
import socket
import sys
import time

IPPROTO_MPTCP = 262
CHUNK = 1 << 20


def _socket(mptcp):
    return socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_MPTCP if mptcp else 0)


def recv(args):
    listener = _socket(args.mptcp)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", args.port))
    listener.listen(1)
    listener.settimeout(args.timeout)
    print("tcpfile: ready", file=sys.stderr, flush=True)
    conn, peer = listener.accept()
    conn.settimeout(args.timeout)
    listener.close()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    moved = 0
    io_ns = 0
    first = None
    fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        while True:
            n = conn.recv_into(buf)
            if n == 0:
                break
            if first is None:
                first = time.monotonic_ns()
            t = time.monotonic_ns()
            done = 0
            while done < n:
                done += os.write(fd, view[done:n])
            io_ns += time.monotonic_ns() - t
            moved += n
        last = time.monotonic_ns()
        t = time.monotonic_ns()
        os.fsync(fd)
        sync_ns = time.monotonic_ns() - t
    finally:
        os.close(fd)
    conn.close()  # after the fsync: the sender's wait ends when the file is on disk
    end = time.monotonic_ns()
    json.dump({"role": "recv", "mptcp": args.mptcp, "peer": peer[0], "bytes": moved,
               "seconds": (end - first) / 1e9 if first else 0.0,
               "data_seconds": (last - first) / 1e9 if first else 0.0, "io_ns": io_ns, "sync_ns": sync_ns},
              sys.stdout)
    print()


def send(args):
    sock = _socket(args.mptcp)
    sock.settimeout(args.timeout)
    start = time.monotonic_ns()
    sock.connect((args.host, args.port))
    connected = time.monotonic_ns()
    size = os.path.getsize(args.file)
    with open(args.file, "rb") as f:
        sent = sock.sendfile(f)  # sendfile(2); falls back to read + send where the socket refuses it
    written = time.monotonic_ns()
    sock.shutdown(socket.SHUT_WR)
    while sock.recv(4096):  # the receiver closes once it has written and synced every byte
        pass
    end = time.monotonic_ns()
    sock.close()
    json.dump({"role": "send", "mptcp": args.mptcp, "bytes": sent, "file_bytes": size,
               "connect_seconds": (connected - start) / 1e9, "write_seconds": (written - connected) / 1e9,
               "seconds": (end - connected) / 1e9}, sys.stdout)
    print()
    return 0 if sent == size else 1


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="role", required=True)
    r = sub.add_parser("recv")
    r.add_argument("--port", type=int, required=True)
    r.add_argument("--out", required=True)
    s = sub.add_parser("send")
    s.add_argument("--host", required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--file", required=True)
    for p in (r, s):
        p.add_argument("--mptcp", action="store_true", help="an MPTCP socket (IPPROTO_MPTCP) instead of TCP")
        p.add_argument("--timeout", type=float, default=60.0, help="seconds any one socket call may block")
    args = parser.parse_args(argv)
    if args.role == "recv":
        recv(args)
        return 0
    return send(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
