#!/usr/bin/env python3
"""Generates the firewall benchmark inputs (seeded, deterministic):
policy-10k.yaml  a 10,000-rule policy: deny rules for distinct source
                 networks and ports, then the rules that allow the iperf3
                 and ping traffic last, so a new connection walks all rules
block-100k.txt   100,000 distinct IPv4 addresses, one per line
block-100k.nft   the same addresses as an nft script for `nft -f`
"""
import ipaddress, random, sys

out = sys.argv[1]
n_rules = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
rnd = random.Random(20261125)

with open(f"{out}/policy-10k.yaml", "w") as f:
    f.write("defaults: {in: deny, out: allow}\nrules:\n")
    for i in range(n_rules - 3):
        net = ipaddress.IPv4Network((0x0B000000 + (i << 8), 24))  # 11.x.y.0/24, distinct
        proto = "tcp" if i % 3 else "udp"
        port = 1024 + (i % 50000)
        f.write(f"  - {{name: d{i}, action: deny, direction: in, protocol: {proto}, src: [{net}], dst_ports: [{port}]}}\n")
    f.write("  - {name: iperf, action: allow, direction: in, protocol: tcp, dst_ports: [5201]}\n")
    f.write("  - {name: ping, action: allow, direction: in, protocol: icmp}\n")
    f.write("  - {name: ping6, action: allow, direction: in, protocol: icmpv6}\n")

addrs = set()
while len(addrs) < 100000:
    a = rnd.randrange(0x01000000, 0xDF000000)
    addrs.add(str(ipaddress.IPv4Address(a)))
addrs = sorted(addrs, key=lambda s: ipaddress.IPv4Address(s))
with open(f"{out}/block-100k.txt", "w") as f:
    f.write("\n".join(addrs) + "\n")
with open(f"{out}/block-100k.nft", "w") as f:
    f.write("add element inet mamori block4 {\n")
    f.write(",\n".join(f"\t{a} timeout 1h" for a in addrs))
    f.write("\n}\n")
