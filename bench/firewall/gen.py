#!/usr/bin/env python3
"""Generates the firewall benchmark inputs (seeded, deterministic):
policy-10k.yaml  a 10,000-rule policy: deny rules for distinct source
                 networks and ports, then the rules that allow the iperf3
                 and ping traffic last, so a new connection walks all rules
block-100k.txt   100,000 distinct IPv4 addresses, one per line
block-100k.nft   the same addresses as an nft script for `nft -f`
policy-10k.json  the same policy in the manager's JSON form
"""
import ipaddress, json, random, sys

out = sys.argv[1]
n_rules = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
rnd = random.Random(20261125)

rules = []
for i in range(n_rules - 3):
    net = ipaddress.IPv4Network((0x0B000000 + (i << 8), 24))  # 11.x.y.0/24, distinct
    rules.append({"name": f"d{i}", "action": "deny", "direction": "in", "protocol": "tcp" if i % 3 else "udp",
                  "src": [str(net)], "dst_ports": [1024 + (i % 50000)]})
rules.append({"name": "iperf", "action": "allow", "direction": "in", "protocol": "tcp", "dst_ports": [5201]})
rules.append({"name": "ping", "action": "allow", "direction": "in", "protocol": "icmp"})
rules.append({"name": "ping6", "action": "allow", "direction": "in", "protocol": "icmpv6"})
with open(f"{out}/policy-10k.yaml", "w") as f:
    f.write("defaults: {in: deny, out: allow}\nrules:\n")
    for r in rules:
        f.write("  - {" + ", ".join(f"{k}: {json.dumps(v)}" for k, v in r.items()) + "}\n")
with open(f"{out}/policy-10k.json", "w") as f:
    json.dump({"defaults": {"in": "deny", "out": "allow"}, "rules": rules}, f)

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
