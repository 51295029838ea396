"""Resident memory of a rollcall process held by N connections that never upgrade, and after
they are gone (bench/RESULTS.md, "Hostile connections").

usage: python3 bench/hostile_memory.py BINARY N [half]
Runs BINARY --config cfg.toml (from the current directory; listen = "127.0.0.1:7791"), opens N
TCP connections (with "half": each sends a half request head with a 2 KB header), prints VmRSS
while they are held, closes them after 4.5 s, prints VmRSS 7 s later (after a memory-trim tick).
"""
import socket, subprocess, sys, time, os
binary = sys.argv[1]; n = int(sys.argv[2]); half = len(sys.argv) > 3
p = subprocess.Popen([binary, "--config", "cfg.toml"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "RUST_LOG": "warn"})
time.sleep(1.0)
def rss():
    for l in open(f"/proc/{p.pid}/status"):
        if l.startswith("VmRSS"): return int(l.split()[1])
print("start", rss(), "kB")
socks = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", 7791))
    if half: s.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-pad: " + b"a"*2000 + b"\r\n")
    socks.append(s)
time.sleep(1.0)
print("held", n, rss(), "kB")
time.sleep(3.5)
for s in socks: s.close()
time.sleep(7)
print("after close + trim tick", rss(), "kB")
p.terminate(); p.wait()
