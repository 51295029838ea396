#!/usr/bin/env python3
"""Per-request figures from callgrind profiles (bench/callgrind_rest.sh writes them).

  callgrind_per_request.py PROFILE N [TOP]            self Ir per request by function
  callgrind_per_request.py A B N [TOP]                the same for two profiles, largest changes
  callgrind_per_request.py --calls A B N REGEX        calls per request of matching functions

Functions are merged across the files their inlined parts come from (callgrind_annotate lists
`file:function` per source file) and across recursion levels (`'2`)."""
import re
import subprocess
import sys


def self_ir(path):
    out = subprocess.run(["callgrind_annotate", "--threshold=100", path],
                         capture_output=True, text=True, check=True).stdout
    total, d = None, {}
    for line in out.splitlines():
        if line.startswith("-- Auto-annotated source"):
            break
        m = re.match(r"^\s*([\d,]+) \(\s*[\d.]+%\)\s+(.*)$", line)
        if not m:
            continue
        n, rest = int(m.group(1).replace(",", "")), m.group(2)
        if rest.startswith("PROGRAM TOTALS"):
            total = n
            continue
        fn = rest.split(":", 1)[1] if ":" in rest else rest
        fn = re.sub(r"'\d+$", "", re.sub(r" \[[^\]]*\]$", "", fn))
        d[fn] = d.get(fn, 0) + n
    return total, d


def calls(path):
    names, c, cfn = {}, {}, None
    for line in open(path, errors="replace"):
        m = re.match(r"^(c?fn)=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
        if m:
            kind, i, nm = m.groups()
            if nm:
                names[i] = nm
            if kind == "cfn":
                cfn = names.get(i, i)
            continue
        m = re.match(r"^calls=(\d+) ", line)
        if m and cfn:
            c[cfn] = c.get(cfn, 0) + int(m.group(1))
    return c


a = sys.argv[1:]
if a[0] == "--calls":
    ca, cb, n, pat = calls(a[1]), calls(a[2]), int(a[3]), re.compile(a[4])
    print(f"{'A/req':>9} {'B/req':>9}  callee (A {a[1]}, B {a[2]})")
    for f in sorted(set(ca) | set(cb), key=lambda f: -(ca.get(f, 0) + cb.get(f, 0))):
        if pat.search(f):
            print(f"{ca.get(f, 0) / n:9.2f} {cb.get(f, 0) / n:9.2f}  {f[:150]}")
elif len(a) >= 3 and not a[1].isdigit():
    (ta, da), (tb, db), n = self_ir(a[0]), self_ir(a[1]), int(a[2])
    top = int(a[3]) if len(a) > 3 else 40
    print(f"A {a[0]}: {ta / n:,.0f} Ir/request\nB {a[1]}: {tb / n:,.0f} Ir/request\n"
          f"B - A: {(tb - ta) / n:+,.0f} Ir/request ({(tb - ta) / ta * 100:+.3f} %)\n")
    print(f"{'A/req':>10} {'B/req':>10} {'B-A':>10}  function (largest changes first)")
    for f in sorted(set(da) | set(db), key=lambda f: -abs(db.get(f, 0) - da.get(f, 0)))[:top]:
        print(f"{da.get(f, 0) / n:10,.0f} {db.get(f, 0) / n:10,.0f} "
              f"{(db.get(f, 0) - da.get(f, 0)) / n:+10,.0f}  {f[:150]}")
else:
    (t, d), n = self_ir(a[0]), int(a[1])
    top = int(a[2]) if len(a) > 2 else 40
    print(f"{a[0]}: {t:,} Ir / {n} requests = {t / n:,.0f} Ir/request\n")
    print(f"{'self Ir/req':>12}  function")
    for f, v in sorted(d.items(), key=lambda x: -x[1])[:top]:
        print(f"{v / n:12,.0f}  {f[:150]}")
