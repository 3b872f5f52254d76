#!/usr/bin/env bash
# Shows that fuzz_conn's invariants catch real defects: for each planted bug
# below, a copy of src/ gets the bug, fuzz_conn is built against the copy
# and run on its seeds (fuzz/corpus/fuzz_conn/) for at most SECS seconds
# (default 120), and the bug must be found. src/ itself is never touched.
#
#   pong-after-close  handle_control answers a ping after our close frame
#   uncounted-frame   a frame JS sent is never reported written
#                     (bufferedAmount stays above 0)
#   leaked-message    on_close forgets the message being assembled
#
# Prints one line per bug: "caught after N runs: <the check or report>" or
# "MISSED"; exits 1 if any was missed, 2 if a plant no longer applies.
#   bash fuzz/plant.sh [SECS] [BUG...]
set -uo pipefail
cd "$(dirname "$0")"

secs=${1:-120}
shift || true
bugs=${*:-pong-after-close uncounted-frame leaked-message}

# The bug: a search string in src/conn.c and its replacement.
plant() {
  case $1 in
    pong-after-close)
      from='if (c->auto_pong && !c->close_sent && !c->terminating) {'
      to='if (c->auto_pong && !c->terminating) {' ;;
    uncounted-frame)
      from='      wsn_outbox_push(c, cmd);
      return;
    case WSN_CMD_CLOSE:'
      to='      cmd->flags |= WSN_CMD_OWN_FRAME;
      wsn_outbox_push(c, cmd);
      return;
    case WSN_CMD_CLOSE:' ;;
    leaked-message)
      from='  wsn_outbox_free(c);
  free_message(c);'
      to='  wsn_outbox_free(c);' ;;
    *) echo "unknown bug: $1" >&2; return 2 ;;
  esac
  FROM=$from TO=$to node -e '
    const fs = require("fs");
    const f = process.argv[1];
    const s = fs.readFileSync(f, "utf8");
    const from = process.env.FROM;
    if (s.split(from).length !== 2) { console.error("plant does not apply"); process.exit(2); }
    fs.writeFileSync(f, s.replace(from, () => process.env.TO));
  ' "$2/src/conn.c"
}

missed=0
for bug in $bugs; do
  tmp=$(mktemp -d)
  cp -r ../src "$tmp/src"
  if ! plant "$bug" "$tmp"; then
    echo "$bug: the plant no longer applies to src/conn.c"
    rm -rf "$tmp"
    exit 2
  fi
  if ! make -s SRC="$tmp/src" BUILD="$tmp/build" "$tmp/build/fuzz_conn" >"$tmp/make.log" 2>&1; then
    cat "$tmp/make.log"
    echo "$bug: build failed"
    rm -rf "$tmp"
    exit 2
  fi
  mkdir -p "$tmp/corpus" "$tmp/art"
  cp corpus/fuzz_conn/* "$tmp/corpus/" 2>/dev/null
  "$tmp/build/fuzz_conn" -max_total_time="$secs" -artifact_prefix="$tmp/art/" \
    "$tmp/corpus" >"$tmp/log" 2>&1
  if ls "$tmp/art/" | grep -q .; then
    runs=$(grep -oE '^#[0-9]+' "$tmp/log" | tr -d '#' | tail -n1)
    why=$(grep -m1 -E 'check failed|ERROR: (AddressSanitizer|LeakSanitizer)|runtime error' "$tmp/log")
    # No status line yet: caught while the seeds were replayed.
    if [ -z "$runs" ]; then echo "$bug: caught by a seed: $why"
    else echo "$bug: caught after $runs runs: $why"; fi
  else
    echo "$bug: MISSED in $secs s"
    missed=1
  fi
  rm -rf "$tmp"
done
exit $missed
