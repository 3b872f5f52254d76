#!/usr/bin/env bash
# Long, resumable libFuzzer runs of the targets of fuzz/Makefile.
#
#   bash fuzz/long.sh start [--more] [EXECS] [TARGET...]
#       Builds (fuzz/build/, as run.sh) and runs every target, or the named
#       ones, in the background (they survive the shell; FUZZ_JOBS at a time,
#       default: the number of CPUs) until each has done EXECS executions in
#       all (default 10000000): the executions already recorded for a target
#       count, so a stopped run continues where it was; --more runs EXECS
#       more instead. A target that is already running is refused.
#   bash fuzz/long.sh status
#       One line per target: executions so far (of the goal); running,
#       queued, done, stopped or finding (its last run ended on one);
#       working corpus size; findings (files in fuzz/findings/<target>/).
#   bash fuzz/long.sh stop
#       Stops every running target and records how far each got.
#   bash fuzz/long.sh minimize [--counters] [TARGET...]
#       Merges each target's working corpus and seeds into a minimal set
#       that reaches every edge they reach (libFuzzer -set_cover_merge=1
#       -use_counters=0; --counters: -merge=1, which also keeps inputs for
#       new hit counts) and makes that the seeds, fuzz/corpus/<target>/;
#       named seeds there (regression inputs, hand-made ones) are kept.
#
# Each target fuzzes its working corpus fuzz/work/<target>/corpus/ (a copy of
# fuzz/corpus/<target>/ the first time, then kept and grown between runs),
# with run.sh's flags (-timeout=25 -rss_limit_mb=2048); findings go to
# fuzz/findings/<target>/ and stop that target. In fuzz/work/<target>/:
# execs (executions recorded so far), goal, log.cur (the current run's log),
# log.1, log.2, ... (finished runs), log.minimize, history (one line a run),
# pgid (the background run's process group). All of fuzz/work/ is
# git-ignored.
set -uo pipefail
cd "$(dirname "$0")" || exit 2
fuzz=$(pwd)
work=$fuzz/work
mkdir -p "$work"

usage() {
  sed -n '4,22p' "$fuzz/long.sh" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

all_targets() { make -s -C "$fuzz" list; }

# The named targets, checked against the Makefile's, or all of them.
pick_targets() {
  local all t
  all=" $(all_targets) "
  if [ $# -eq 0 ]; then echo "$all"; return 0; fi
  for t in "$@"; do
    case $all in
      *" $t "*) ;;
      *) echo "long: no target $t (targets:$all)" >&2; return 1 ;;
    esac
  done
  echo "$@"
}

build() {
  if ! make -s -C "$fuzz" all; then
    echo "long: build failed" >&2
    exit 2
  fi
}

# Runs "$@" holding fuzz/work/.lock, in a subshell (so fd 9 is never left
# open in a process that outlives it).
with_lock() {
  (
    flock 9 || exit 1
    "$@"
  ) 9>"$work/.lock"
}

# The process group of a target's background run, if it is still alive.
# A group id could be reused by an unrelated process after a reboot, so the
# group leader must be our scheduler.
live_pgid() {
  local f=$work/$1/pgid pg
  [ -f "$f" ] || return 1
  pg=$(cat "$f")
  [[ "$pg" =~ ^[0-9]+$ ]] || return 1
  kill -0 -- "-$pg" 2>/dev/null || return 1
  ps -o args= -p "$pg" 2>/dev/null | grep -q 'long\.sh _sched' || return 1
  echo "$pg"
}

# Executions done according to a libFuzzer log: "Done N runs" at a normal
# end, else the final stats (printed on a finding and on SIGTERM), else the
# last status line "#N" (if it was killed outright: an undercount).
log_runs() {
  local n
  n=$(grep -aoE '^Done [0-9]+ runs' "$1" 2>/dev/null | grep -oE '[0-9]+' | tail -n1)
  [ -n "$n" ] || n=$(grep -aoE '^stat::number_of_executed_units: [0-9]+' "$1" 2>/dev/null |
    grep -oE '[0-9]+$' | tail -n1)
  [ -n "$n" ] || n=$(grep -aoE '^#[0-9]+' "$1" 2>/dev/null | tr -d '#' | tail -n1)
  echo "${n:-0}"
}

recorded() {
  local n
  n=$(cat "$work/$1/execs" 2>/dev/null)
  [[ "$n" =~ ^[0-9]+$ ]] || n=0
  echo "$n"
}

findings() {
  find "$fuzz/findings/$1" -maxdepth 1 -type f \
    \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) \
    2>/dev/null | wc -l
}

# The bytes of the files in a directory, in KB rounded up (not du's blocks).
dir_kb() {
  find "$1" -type f -printf '%s\n' 2>/dev/null | awk '{ s += $1 } END { print int((s + 1023) / 1024) }'
}

# Adds the executions of log.cur to execs and files the log as log.N.
# Called with the lock held, once the run is over (its process is gone).
record() {
  local t=$1 d=$work/$1 n total k rc
  [ -f "$d/log.cur" ] || return 0
  n=$(log_runs "$d/log.cur")
  total=$(( $(recorded "$t") + n ))
  rc=$(cat "$d/rc.cur" 2>/dev/null || echo stopped)
  k=1
  while [ -e "$d/log.$k" ]; do k=$((k + 1)); done
  echo "$total" >"$d/execs.tmp" && mv "$d/execs.tmp" "$d/execs"
  mv "$d/log.cur" "$d/log.$k"
  rm -f "$d/rc.cur"
  echo "$(date -u +%FT%TZ) runs=$n total=$total exit=$rc log=log.$k" >>"$d/history"
}

# A run that ended without being recorded (its group was killed outright,
# or the machine rebooted) is recorded now.
record_stale() {
  local t
  for t in "$@"; do
    if ! live_pgid "$t" >/dev/null; then
      record "$t"
      rm -f "$work/$t/pgid"
    fi
  done
}

# ---- the background part ---------------------------------------------------

# One target's run, inside the scheduler's process group.
run_one() {
  local t=$1 n=$2 d=$work/$1 rc
  mkdir -p "$fuzz/findings/$t"
  "$fuzz/build/$t" -runs="$n" -timeout=25 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$fuzz/findings/$t/" \
    "$d/corpus" >"$d/log.cur" 2>&1
  rc=$?
  # From here on a stop must not cut the bookkeeping in half: stop records
  # what is left over, this records the rest, under the lock either way.
  trap '' TERM INT HUP
  echo "$rc" >"$d/rc.cur"
  with_lock record_done "$t"
  echo "$(date -u +%FT%TZ) $t: exit $rc, $(recorded "$t") executions"
}

record_done() {
  record "$1"
  rm -f "$work/$1/pgid"
}

# bash long.sh _sched JOBS TARGET:RUNS...: started by `start` with setsid, so
# it leads a process group of its own that `stop` can kill as a whole.
sched() {
  local jobs=$1 running=0 spec
  shift
  for spec in "$@"; do
    if [ "$running" -ge "$jobs" ]; then
      wait -n
      running=$((running - 1))
    fi
    run_one "${spec%%:*}" "${spec#*:}" &
    running=$((running + 1))
  done
  wait
}

# ---- commands --------------------------------------------------------------

# With the lock held: decides what each target still has to run, prepares
# its working corpus and claims it for the group to come (pgid "pending").
plan() {
  local goal=$1 more=$2 t have n
  shift 2
  for t in "$@"; do
    if live_pgid "$t" >/dev/null; then
      echo "long: $t is already running (bash fuzz/long.sh stop first)" >&2
      continue
    fi
    record "$t"
    rm -f "$work/$t/pgid"
    have=$(recorded "$t")
    if [ "$more" = 1 ]; then n=$goal; else n=$((goal - have)); fi
    if [ "$n" -le 0 ]; then
      echo "long: $t already has $have executions (goal $goal; --more for more)" >&2
      continue
    fi
    mkdir -p "$work/$t/corpus"
    if [ -z "$(ls -A "$work/$t/corpus")" ] && [ -d "$fuzz/corpus/$t" ]; then
      cp "$fuzz/corpus/$t"/* "$work/$t/corpus/" 2>/dev/null
    fi
    echo $((have + n)) >"$work/$t/goal"
    echo "$t:$n"
  done
}

launch() {
  local jobs=$1 pg spec t
  shift
  setsid nohup bash "$fuzz/long.sh" _sched "$jobs" "$@" \
    </dev/null >>"$work/sched.log" 2>&1 9>&- &
  pg=$!
  # A background job of a script is not a group leader, so setsid runs in
  # place: its pid is the new group's id (checked by live_pgid).
  for spec in "$@"; do
    t=${spec%%:*}
    echo "$pg" >"$work/$t/pgid"
    echo "$t: $(recorded "$t") executions so far, running ${spec#*:} more (log: fuzz/work/$t/log.cur)"
  done
  echo "long: started in the background, process group $pg (bash fuzz/long.sh status | stop)"
}

cmd_start() {
  local goal=10000000 more=0 jobs targets specs
  local args=()
  while [ $# -gt 0 ]; do
    case $1 in
      --more) more=1 ;;
      -*) usage ;;
      *) args+=("$1") ;;
    esac
    shift
  done
  if [ ${#args[@]} -gt 0 ] && [[ "${args[0]}" =~ ^[0-9]+$ ]]; then
    goal=${args[0]}
    args=("${args[@]:1}")
  fi
  [ "$goal" -ge 1 ] || usage
  jobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 2)}
  [[ "$jobs" =~ ^[1-9][0-9]*$ ]] || { echo "long: bad FUZZ_JOBS=$jobs" >&2; exit 2; }
  targets=$(pick_targets "${args[@]}") || exit 2
  build
  # Planning and claiming happen under one lock, so two starts cannot both
  # take a target.
  # shellcheck disable=SC2086 # targets is a list of words.
  with_lock plan_and_launch "$goal" "$more" "$jobs" $targets
}

# Exits 1 if nothing was started.
plan_and_launch() {
  local goal=$1 more=$2 jobs=$3 specs
  shift 3
  mapfile -t specs < <(plan "$goal" "$more" "$@")
  [ ${#specs[@]} -gt 0 ] || return 1
  launch "$jobs" "${specs[@]}"
}

cmd_status() {
  local t d state have goal live files kb
  # shellcheck disable=SC2046
  with_lock record_stale $(all_targets)
  for t in $(all_targets); do
    d=$work/$t
    have=$(recorded "$t")
    live=0
    if live_pgid "$t" >/dev/null; then
      if [ -f "$d/log.cur" ]; then
        state=running
        live=$(log_runs "$d/log.cur")
      else
        state=queued
      fi
    elif tail -n1 "$d/history" 2>/dev/null | grep -qE ' exit=[1-9][0-9]* '; then
      state=finding
    elif [ -d "$d" ] && [ "$have" -ge "$(cat "$d/goal" 2>/dev/null || echo 1)" ]; then
      state="done"
    elif [ -d "$d" ]; then
      state=stopped
    else
      state="never run"
    fi
    goal=$(cat "$d/goal" 2>/dev/null)
    files=$(find "$d/corpus" -type f 2>/dev/null | wc -l)
    kb=$(dir_kb "$d/corpus")
    printf '%-16s %-9s %12s execs%s  corpus %5d files %6d KB  findings %d\n' \
      "$t" "$state" "$((have + live))" "${goal:+ of $goal}" "$files" "${kb:-0}" "$(findings "$t")"
  done
}

cmd_stop() {
  local t pg pgs="" i alive
  # shellcheck disable=SC2046
  pgs=$(for t in $(all_targets); do live_pgid "$t"; done | sort -u)
  if [ -z "$pgs" ]; then
    echo "long: nothing is running"
  fi
  for pg in $pgs; do kill -TERM -- "-$pg" 2>/dev/null; done
  # libFuzzer prints its final stats on SIGTERM and exits; give the groups
  # 20 s, then kill what is left.
  for i in $(seq 1 40); do
    alive=""
    for pg in $pgs; do
      if kill -0 -- "-$pg" 2>/dev/null; then alive="$alive $pg"; fi
    done
    [ -n "$alive" ] || break
    sleep 0.5
    [ "$i" -eq 40 ] && for pg in $alive; do kill -KILL -- "-$pg" 2>/dev/null; done
  done
  # shellcheck disable=SC2046
  with_lock record_stale $(all_targets)
  cmd_status
}

cmd_minimize() {
  local targets t d new before after files kb ok=0
  # Default: the smallest set (greedy set cover) that reaches every edge
  # the inputs reach. Plain -merge=1 also keeps an input for each new hit
  # count bucket of an edge, which after a few million executions is
  # hundreds of files per target: a dump rather than seeds. --counters
  # asks for that (-merge=1) anyway.
  local merge="-set_cover_merge=1 -use_counters=0"
  if [ "${1:-}" = --counters ]; then merge="-merge=1"; shift; fi
  targets=$(pick_targets "$@") || exit 2
  build
  for t in $targets; do
    d=$work/$t
    if live_pgid "$t" >/dev/null; then
      echo "long: $t is running; stop it before minimizing" >&2
      ok=1
      continue
    fi
    local dirs=()
    [ -d "$fuzz/corpus/$t" ] && dirs+=("$fuzz/corpus/$t")
    [ -d "$d/corpus" ] && dirs+=("$d/corpus")
    if [ ${#dirs[@]} -eq 0 ]; then
      echo "$t: no corpus to minimize"
      continue
    fi
    mkdir -p "$d" "$fuzz/findings/$t"
    new=$d/min.new
    rm -rf "$new"
    mkdir -p "$new"
    before="$(find "${dirs[@]}" -type f | wc -l) inputs"
    # shellcheck disable=SC2086 # merge is a list of flags.
    if ! "$fuzz/build/$t" $merge -timeout=25 -rss_limit_mb=2048 \
        -artifact_prefix="$fuzz/findings/$t/" "$new" "${dirs[@]}" \
        >"$d/log.minimize" 2>&1; then
      echo "$t: merge failed (fuzz/work/$t/log.minimize)" >&2
      tail -n 20 "$d/log.minimize" >&2
      ok=1
      continue
    fi
    files=$(find "$new" -type f | wc -l)
    if [ "$files" -eq 0 ]; then
      echo "$t: the merge kept nothing; fuzz/corpus/$t left as it was" >&2
      ok=1
      continue
    fi
    after=$(find "$fuzz/corpus/$t" -type f 2>/dev/null | wc -l)
    mkdir -p "$fuzz/corpus/$t"
    # Seeds with a name (regression inputs of fixed findings, hand-made
    # ones) stay; the hash-named ones (libFuzzer names an input by its
    # SHA-1) are replaced by the merge's, leaving out what a named seed
    # already holds.
    find "$fuzz/corpus/$t" -maxdepth 1 -type f -regextype posix-extended \
      -regex '.*/[0-9a-f]{40}' -delete
    local named
    named=$(find "$fuzz/corpus/$t" -maxdepth 1 -type f -exec sha1sum {} + |
      cut -d' ' -f1)
    for f in "$new"/*; do
      if ! grep -qx "$(basename "$f")" <<<"$named"; then
        cp "$f" "$fuzz/corpus/$t/"
      fi
    done
    files=$(find "$fuzz/corpus/$t" -type f | wc -l)
    rm -rf "$new"
    kb=$(dir_kb "$fuzz/corpus/$t")
    echo "$t: fuzz/corpus/$t now $files files, $kb KB (was $after files; merged from $before)"
    if [ "$files" -gt 300 ] || [ "$kb" -gt 1024 ]; then
      echo "long: warning: fuzz/corpus/$t is over 300 files or 1 MB: these are seeds, not a dump" >&2
    fi
  done
  return "$ok"
}

case ${1:-} in
  start) shift; cmd_start "$@" ;;
  status) cmd_status ;;
  stop) cmd_stop ;;
  minimize) shift; cmd_minimize "$@" ;;
  _sched) shift; sched "$@" ;;
  *) usage ;;
esac
