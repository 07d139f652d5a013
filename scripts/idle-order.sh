#!/usr/bin/env bash
# Record which functions pythond and pythond-worker run while idle and write
# them, one list per binary, to scripts/idle-order/<binary>.txt. build.rs
# hands each list to the linker (lld --symbol-ordering-file), which puts those
# functions first in .text, together. Why: once start-up is over both
# processes page their code out (crates/core/src/pageout.rs), and every later
# fault maps back the 64 KiB of cached code around it; with the idle code
# spread over the binary that was ~2 MiB per process, with it together a few
# hundred KiB (BENCHMARKS.md, "Idle memory").
#
# The record: the demo input (python.d/demo) under valgrind's callgrind, with
# instrumentation on only for an idle window after start-up (the demo's runs
# every 10 s, the worker's reports, the supervisor's checks, and what comes
# once a minute or so: a worker counted healthy after 60 s, the HTTP client
# closing its idle connection after 90 s and opening another), posting to a
# stand-in DataKit that answers 200.
#
# Rerun it after changing what the daemon does while idle, or after a change
# of Rust toolchain or of Cargo.lock (symbol names carry hashes of both): a
# stale list only loses the grouping, never breaks the build (names the
# binary lacks are skipped). `--check` says how much of each list the
# binaries in target/release (a release or a bench build) have.
#
# Needs valgrind (Debian: valgrind) and python3. Usage:
#   scripts/idle-order.sh          # build and record twice (the release and
#                                  # the bench builds; ~8 min), write the lists
#   scripts/idle-order.sh --check  # compare the lists with target/release
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/scripts/idle-order"
bins=(pythond pythond-worker)

# check: how many names of each part of each list (the release build's,
# the bench build's) the binary in target/release has; the part of the
# build that is there should be found nearly in full.
check() {
  for b in "${bins[@]}"; do
    nm "$root/target/release/$b" | awk -v b="$b" '
      NR == FNR { have[$NF] = 1; next }
      /^# bench:/ { part = "bench"; next }
      /^#/ { next }
      { all[part]++; if ($0 in have) found[part]++ }
      END { printf "%s: release part %d of %d found in target/release/%s, bench part %d of %d\n",
              b, found["release"], all["release"], b, found["bench"], all["bench"] }
    ' - part=release "$out/$b.txt"
  done
}
if [ "${1:-}" = "--check" ]; then
  check
  exit 0
fi

command -v valgrind >/dev/null || { echo "valgrind is missing (apt-get install valgrind)" >&2; exit 1; }

dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$dir"' EXIT
mkdir -p "$dir/python.d/demo" "$dir/conf.d"
cp "$root"/python.d/demo/*.py "$dir/python.d/demo/"
printf "[[inputs.pythond]]\nname = 'demo'\ncmd = 'python3'\ndirs = ['demo']\n" > "$dir/conf.d/pythond.conf"

# The stand-in DataKit: 200 to every POST, on a port the kernel picks, and
# HTTP/1.1 keep-alive as DataKit's (a server that closes after each
# response has the client run other code).
python3 - "$dir/port" <<'PY' &
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a):
        pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
open(sys.argv[1], "w").write(str(s.server_address[1]))
s.serve_forever()
PY
for _ in $(seq 50); do [ -s "$dir/port" ] && break; sleep 0.1; done

# Functions of the binary itself (not of libc or libpython), in the order
# callgrind first lists them; `'2` marks a recursion level, not a name.
names() {
  python3 - "$1" "$2" <<'PY'
import re, sys
obs, fns, ob, seen = {}, {}, "", []
for line in open(sys.argv[1]):
    m = re.match(r"^(ob|cob|fn|cfn)=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
    if not m:
        continue
    kind, ident, name = m.groups()
    table = obs if kind in ("ob", "cob") else fns
    if name is not None:
        table[ident] = name
    if kind == "ob":
        ob = obs[ident]
    elif kind == "fn" and ob.endswith("/" + sys.argv[2]):
        seen.append(re.sub(r"'\d+$", "", fns[ident]))
print("\n".join(dict.fromkeys(seen)))
PY
}

# record TAG: run the demo on target/release's binaries under callgrind and
# write the functions each ran in the idle window to $dir/<binary>.TAG.
record() {
  local tag=$1 cg="$dir/cg-$1" sup worker
  mkdir -p "$cg"
  rm -rf "$dir/logs"
  # The interpreter probes `cmd` runs are skipped (not traced), the worker is.
  valgrind --tool=callgrind --trace-children=yes --trace-children-skip='*/python3*,*/pyenv*' \
    --instr-atstart=no --demangle=no --callgrind-out-file="$cg/%p" \
    "$root/target/release/pythond" run --config "$dir/conf.d" --datakit-dir "$dir" \
    --datakit-url "http://127.0.0.1:$(cat "$dir/port")" --log-dir "$dir/logs" \
    >/dev/null 2>"$dir/stderr-$tag" &
  sup=$!
  # Start-up under callgrind takes seconds. The window opens once the demo's
  # scripts have all run once, so that it holds the worker's pageout 5 s
  # later (the code after it returns is faulted back at once).
  for _ in $(seq 120); do
    [ "$(grep -c 'script=DemoFeed' "$dir/stderr-$tag" 2>/dev/null || true)" -ge 1 ] && break
    sleep 1
  done
  worker=$(pgrep -P "$sup" -f pythond-worker) || { cat "$dir/stderr-$tag" >&2; exit 1; }
  callgrind_control -i on "$sup" >/dev/null
  callgrind_control -i on "$worker" >/dev/null
  sleep 130
  callgrind_control -i off "$sup" >/dev/null
  callgrind_control -i off "$worker" >/dev/null
  kill "$sup"
  wait "$sup" 2>/dev/null || true
  names "$cg/$sup" pythond > "$dir/pythond.$tag"
  names "$cg/$worker" pythond-worker > "$dir/pythond-worker.$tag"
}

# `cargo bench` builds the binaries again (into the same target/release),
# with the features its dev-dependencies add, and those are in the hash of
# most symbol names: its build gets a record of its own.
(cd "$root" && cargo build --release)
record release
(cd "$root" && cargo bench --bench runtime --no-run)
record bench
(cd "$root" && cargo build --release)

mkdir -p "$out"
for b in "${bins[@]}"; do
  {
    echo "# Functions $b runs while idle, written by scripts/idle-order.sh"
    echo "# ($(rustc -V), $(date -u +%F)); read by build.rs. First as"
    echo "# \`cargo build --release\` names them, then what \`cargo bench\` names otherwise."
    cat "$dir/$b.release"
    echo "# bench: the same functions as a \`cargo bench\` build names them"
    grep -vxFf "$dir/$b.release" "$dir/$b.bench" || true
  } > "$out/$b.txt"
done
check
