# A realistic collector: host load and memory from /proc, as metrics, plus an
# object describing the host. Runs every 10 s. Linux only.
import os
import socket

from datakit_framework import DataKitFramework


def read_meminfo(path="/proc/meminfo"):
    out = {}
    with open(path) as f:
        for line in f:
            key, _, rest = line.partition(":")
            parts = rest.split()
            if parts:
                # values are in kB
                out[key] = int(parts[0]) * 1024
    return out


class HostLoad(DataKitFramework):
    name = "host_load"
    interval = 10

    def run(self):
        load1, load5, load15 = os.getloadavg()
        mem = read_meminfo()
        host = socket.gethostname()
        self.feed_metric(
            input="host_load",
            measurement="host_load",
            tags={"host": host},
            fields={
                "load1": load1,
                "load5": load5,
                "load15": load15,
                "mem_total": mem.get("MemTotal"),
                "mem_available": mem.get("MemAvailable"),
                "cpus": os.cpu_count(),
            },
        )
        return self.feed_object(
            input="host_load",
            cls="host_info",
            name=host,
            fields={"cpus": os.cpu_count(), "kernel": os.uname().release},
        )
