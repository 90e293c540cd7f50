"""Holds many slow and idle connections to an HTTP server on loopback, the way a slowloris
attack does, for the API's slow-client test (tests/cli/api_slow_clients.sh).

usage: slow_clients.py PORT BODY_TRICKLERS HEAD_TRICKLERS IDLERS SECONDS

Body tricklers send a whole request head announcing a large body, then one body byte every
5 to 12 s; head tricklers send a request head one byte at a time, as slowly; idlers connect
and send nothing. A connection the server closes is opened again at once, as an attacker
would, so the server cannot win by waiting. Prints "all connected" once it has opened as many
connections as it has clients, and at the end how many it opened."""
import random
import socket
import sys
import time

BODY_HEAD = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
             b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
SLOW_HEAD = b"GET /node HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"a" * 4000


class Client:
    def __init__(self, port, kind):
        self.port, self.kind, self.sock, self.sent = port, kind, None, 0
        self.next_byte = 0.0

    def connect(self):
        try:
            self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=1)
        except OSError:
            self.sock = None  # the server's backlog is full: try again next round
            return False
        self.sock.setblocking(False)
        self.sent = 0
        if self.kind == "body":
            self.send(BODY_HEAD)
        self.next_byte = time.monotonic() + random.uniform(5, 12)
        return True

    def send(self, data):
        try:
            self.sock.send(data)
        except OSError:
            self.close()

    def close(self):
        if self.sock:
            self.sock.close()
        self.sock = None

    def alive(self):
        """False once the server closed the connection or answered it."""
        try:
            self.sock.recv(4096)  # an answer, or b"" for a close: done either way
            return False
        except BlockingIOError:
            return True
        except OSError:
            return False

    def tick(self, now):
        if self.sock and not self.alive():
            self.close()
        if not self.sock:
            return self.connect()
        if self.kind != "idle" and now >= self.next_byte:
            self.send(b"x" if self.kind == "body" else SLOW_HEAD[self.sent:self.sent + 1])
            self.sent += 1
            self.next_byte = now + random.uniform(5, 12)
        return False


def main():
    port, bodies, heads, idlers, seconds = (int(a) for a in sys.argv[1:6])
    clients = ([Client(port, "body") for _ in range(bodies)] +
               [Client(port, "head") for _ in range(heads)] +
               [Client(port, "idle") for _ in range(idlers)])
    opened = 0
    announced = False
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        now = time.monotonic()
        opened += sum(c.tick(now) for c in clients)
        if not announced and opened >= len(clients):
            print("all connected", flush=True)
            announced = True
        time.sleep(0.2)
    for c in clients:
        c.close()
    print(f"opened {opened} connections", flush=True)


if __name__ == "__main__":
    main()
