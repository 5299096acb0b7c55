# bench/peers/lib.sh — sourced by run.sh and snapshotter.sh (set W to the work dir first).
# A private docker-registry on a free loopback port whose access log counts what it served, and
# the no-delete-while-measuring helpers (ext4 without a journal, see ../shared/bench/peers).

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.3f", b-a}'; }
# Moves paths into $W/trash (same filesystem, instant); the caller empties it at the very end.
trash() { local p; for p in "$@"; do [[ -e $p ]] && mv "$p" "$W/trash/$(basename "$p").$(date +%s%N)"; done; return 0; }
du_bytes() { du -scB1 "$@" 2>/dev/null | tail -1 | cut -f1; }
umount_under() {  # deepest first; only mounts below our own dir
  local m
  for m in $(awk -v d="$1" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r); do umount -l "$m" || true; done
}
free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

# start_registry: docker-registry on a free 127.0.0.1 port with its data in $W/registry/data (the
# old data goes to the trash). Sets REG (host:port), REG_PID and LOG (the access log).
start_registry() {
  REG=127.0.0.1:$(free_port)
  mkdir -p "$W/trash" "$W/registry"
  trash "$W/registry/data"; mkdir -p "$W/registry/data"
  printf 'version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n' "$W/registry/data" "$REG" > "$W/registry/config.yml"
  LOG=$W/registry/registry.log
  : > "$LOG"
  /usr/bin/docker-registry serve "$W/registry/config.yml" >>"$LOG" 2>&1 &
  REG_PID=$!
  for _ in $(seq 1 100); do curl -fsS -o /dev/null "http://$REG/v2/" 2>/dev/null && return 0; sleep 0.1; done
  echo "docker-registry did not start; see $LOG" >&2; return 1
}
reg_lines() { wc -l < "$LOG"; }
# Sum of the response sizes of successful GETs logged after line $1, and their count (HEAD sizes
# never go on the wire).
reg_bytes() {
  awk -v m="$1" 'NR > m && $6 == "\"GET" && $9 ~ /^[23]/ && $10 ~ /^[0-9]+$/ { s += $10; n++ } END { printf "%d %d\n", s, n }' "$LOG"
}
