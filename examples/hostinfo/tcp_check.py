# A realistic collector: TCP connect checks with latency, reported in one
# report() call as metrics, with a log line for every failed check.
import socket
import time

from datakit_framework import DataKitFramework

TARGETS = [("127.0.0.1", 9529), ("127.0.0.1", 22)]


class TcpCheck(DataKitFramework):
    name = "tcp_check"
    interval = 30
    timeout = 10  # pythond: interrupt a run that takes longer than this

    def run(self):
        metrics, logs = [], []
        for host, port in TARGETS:
            start = time.monotonic()
            try:
                with socket.create_connection((host, port), timeout=2):
                    ok = True
                    err = None
            except OSError as e:
                ok = False
                err = str(e)
            elapsed_ms = (time.monotonic() - start) * 1000.0
            tags = {"target": "%s:%d" % (host, port)}
            metrics.append({
                "measurement": "tcp_check",
                "tags": tags,
                "fields": {"ok": ok, "latency_ms": elapsed_ms},
            })
            if not ok:
                logs.append({
                    "measurement": "tcp_check",
                    "tags": tags,
                    "fields": {"message": "connect failed: %s" % err, "status": "error"},
                })
        return self.report({"M": metrics, "L": logs, "input": "tcp_check"})
