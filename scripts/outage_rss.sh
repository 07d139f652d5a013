#!/usr/bin/env bash
# Memory while DataKit is down: one input producing 10k points/s (1000 points
# every 0.1 s) against an address nobody listens on, with the disk spool on.
# Prints the RSS of supervisor + worker every 30 s. Usage:
#   cargo build --release && scripts/outage_rss.sh [seconds=600]
set -euo pipefail
secs=${1:-600}
bin="$(cd "$(dirname "$0")/.." && pwd)/target/release/pythond"
dir=$(mktemp -d)
mkdir -p "$dir/python.d/o" "$dir/conf.d"
cat > "$dir/python.d/o/o.py" <<'PY'
from datakit_framework import DataKitFramework
class Outage(DataKitFramework):
    name = 'outage'
    interval = 0.1
    n = 0
    def run(self):
        base = type(self).n
        type(self).n += 1000
        self.report({'M': [{'measurement': 'o', 'tags': {'host': 'h1', 'region': 'eu'},
                            'fields': {'seq': base + i, 'v': 1.5, 'ok': True}} for i in range(1000)]})
PY
printf "[[inputs.pythond]]\nname='o'\ncmd='python3'\ndirs=['o']\n" > "$dir/conf.d/o.conf"
# 127.0.0.1:9 (discard) is not listening: DataKit is "down" for the whole run.
"$bin" run --config "$dir/conf.d" --datakit-dir "$dir" --datakit-url http://127.0.0.1:9 \
  --log-dir "$dir/logs" --data-dir "$dir/spool" 2>/dev/null &
sup=$!
sleep 3
trap 'kill $sup 2>/dev/null; rm -rf "$dir"' EXIT
rss() { awk '/VmRSS/{print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
echo "t_s,supervisor_kib,worker_kib,total_mib,spool_mib"
for ((t = 0; t <= secs; t += 30)); do
  w=$(cat /proc/$sup/task/*/children 2>/dev/null | tr ' ' '\n' | grep -m1 . || echo 0)
  s=$(rss $sup); k=$(rss "$w")
  sp=$(du -sm "$dir/spool" 2>/dev/null | cut -f1 || true)
  echo "$t,$s,$k,$(( (s + k) / 1024 )),${sp:-0}"
  [ "$t" -lt "$secs" ] && sleep 30
done
