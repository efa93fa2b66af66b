#!/usr/bin/env python3
"""f2b_replay.py ROWS [MAXRETRY FINDTIME]: replays `fail2ban-regex -o row` output through
fail2ban's own FailManager (Debian jail.conf defaults maxretry=5, findtime=600) and prints
every IP that reaches a ban, one per line. Same logic as /work/shared/bench/eval_logs.py."""
import re, sys
sys.path.insert(0, '/usr/lib/python3/dist-packages')
from fail2ban.server.failmanager import FailManager, FailManagerEmpty
from fail2ban.server.ticket import FailTicket
maxretry = int(sys.argv[2]) if len(sys.argv) > 2 else 5
findtime = int(sys.argv[3]) if len(sys.argv) > 3 else 600
fm = FailManager(); fm.setMaxRetry(maxretry); fm.setMaxTime(findtime)
rx = re.compile(r"^\['([^']+)',\s+([0-9.]+),")
banned = set(); last_clean = 0
for line in open(sys.argv[1], errors='replace'):
    m = rx.match(line)
    if not m:
        continue
    ip, t = m.group(1), float(m.group(2))
    if t - last_clean > 60:
        fm.cleanup(t); last_clean = t
    fm.addFailure(FailTicket(ip, t))
    try:
        fm.toBan(ip); banned.add(ip)
    except FailManagerEmpty:
        pass
for ip in sorted(banned):
    print(ip)
