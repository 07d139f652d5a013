# Blocked in C (a recv() nobody answers) far past its timeout.
import socket
from datakit_framework import DataKitFramework


class Sock(DataKitFramework):
    name = 'sock'
    interval = 1
    timeout = 0.3

    def run(self):
        srv = socket.socket()
        srv.bind(('127.0.0.1', 0))
        srv.listen(1)
        c = socket.create_connection(srv.getsockname())
        c.recv(1)
