#!/usr/bin/env python3
"""The host's end of the guest network tests: on ADDR, serves FILE to the first
client of --send-port, then takes exactly --recv-bytes from the first client of
--recv-port and prints their sha256. Exits when both are done or on --timeout."""
import argparse
import hashlib
import socket
import sys
import threading


def listener(addr, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(1)
    return s


def serve(sock, path):
    conn, _ = sock.accept()
    with conn, open(path, "rb") as f:
        conn.sendfile(f)


def sink(sock, expected, result):
    conn, _ = sock.accept()
    digest, got = hashlib.sha256(), 0
    with conn:
        while got < expected:
            chunk = conn.recv(min(1 << 20, expected - got))
            if not chunk:
                break
            digest.update(chunk)
            got += len(chunk)
    result.append((got, digest.hexdigest()))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", required=True)
    ap.add_argument("--send", required=True)
    ap.add_argument("--send-port", type=int, default=5001)
    ap.add_argument("--recv-port", type=int, default=5002)
    ap.add_argument("--recv-bytes", type=int, required=True)
    ap.add_argument("--timeout", type=float, default=600)
    args = ap.parse_args()
    send_sock, recv_sock = listener(args.addr, args.send_port), listener(args.addr, args.recv_port)
    print("ready", flush=True)
    result = []
    threads = [threading.Thread(target=serve, args=(send_sock, args.send), daemon=True),
               threading.Thread(target=sink, args=(recv_sock, args.recv_bytes, result), daemon=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(args.timeout)
    if not result:
        sys.exit("net-peer: nothing received")
    print(f"received {result[0][0]} {result[0][1]}", flush=True)


if __name__ == "__main__":
    main()
