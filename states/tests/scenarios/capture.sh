#!/usr/bin/env bash
# Recapture Salt 3007.8 reference output for the requisite/ordering scenarios.
#
# Usage: capture.sh [SCENARIO_DIR...]      (default: every directory next to this script)
#
# For each scenario directory NAME (containing init.sls and possibly other *.sls and
# sub-directories), this:
#   1. builds a throw-away masterless Salt setup under $RUN (default /tmp/salt-scn-run):
#        $RUN/conf/minion   file_client: local, root_dir: $RUN/root, id: local,
#                           file_roots: base: [$RUN/srv]
#        $RUN/srv/NAME/     a copy of the scenario directory's *.sls tree
#   2. empties the scratch dir /tmp/brine-scn (the SLS files only touch paths under
#      {{ pillar.get('scratch', '/tmp/brine-scn') }}) and re-creates it (empty);
#   3. runs   salt-call --local -c $RUN/conf --out json state.apply NAME [ARGS...]
#      (ARGS: the whitespace-separated words of NAME/ARGS if that file exists, e.g.
#      "test=True" or "failhard=True"),
#      records the exit code, then runs it again with --retcode-passthrough (fresh
#      scratch dir) only to record that exit code too;
#   4. writes NAME/salt.json: the JSON with each state's start_time and duration removed,
#      pretty-printed (indent 2) with sorted keys. If stdout is not JSON, writes
#      NAME/salt.txt with stdout, stderr and exit code instead.
#   5. writes NAME/rc: "rc=<plain exit code> passthrough_rc=<exit code with --retcode-passthrough>"
#
# Salt itself comes from /tmp/salt-reference (install it with
# /work/shared/tools/install-salt-reference /tmp/salt-reference).
set -u
HERE="$(cd "$(dirname "$0")" && pwd)"
SALT="${SALT_REF:-/tmp/salt-reference}"
RUN="${RUN:-/tmp/salt-scn-run}"
SCRATCH=/tmp/brine-scn
PY="$SALT/bin/python3"
[ -x "$SALT/bin/salt-call" ] || { echo "missing $SALT/bin/salt-call" >&2; exit 1; }

if [ $# -eq 0 ]; then
  set -- $(cd "$HERE" && ls -d */ | tr -d /)
fi

for scn in "$@"; do
  scn="${scn%/}"; scn="${scn##*/}"
  dir="$HERE/$scn"
  [ -f "$dir/init.sls" ] || { echo "skip $scn (no init.sls)"; continue; }
  testarg=()
  [ -f "$dir/ARGS" ] && read -r -a testarg < "$dir/ARGS"
  out=()
  for pass in plain passthrough; do
    rm -rf "$RUN" "$SCRATCH"
    mkdir -p "$RUN/conf" "$RUN/root" "$RUN/srv/$scn" "$SCRATCH"
    cat > "$RUN/conf/minion" <<CONF
file_client: local
root_dir: $RUN/root
id: local
file_roots:
  base:
    - $RUN/srv
CONF
    (cd "$dir" && find . -name "*.sls" -exec install -D -m644 {} "$RUN/srv/$scn/{}" \;)
    extra=()
    [ "$pass" = passthrough ] && extra=(--retcode-passthrough)
    "$SALT/bin/salt-call" --local -c "$RUN/conf" --out json "${extra[@]}" \
        state.apply "$scn" "${testarg[@]}" >"$RUN/stdout" 2>"$RUN/stderr"
    rc=$?
    if [ "$pass" = plain ]; then
      plain_rc=$rc
      mkdir -p "$RUN.out"; cp "$RUN/stdout" "$RUN.out/stdout"; cp "$RUN/stderr" "$RUN.out/stderr"
    else
      pt_rc=$rc
    fi
  done
  rm -f "$dir/salt.json" "$dir/salt.txt"
  if "$PY" - "$RUN.out/stdout" "$dir/salt.json" <<'PYEOF'
import json, sys
try:
    data = json.load(open(sys.argv[1]))
except Exception:
    sys.exit(1)
def strip(d):
    if isinstance(d, dict):
        for v in d.values():
            if isinstance(v, dict) and "__run_num__" in v:
                v.pop("start_time", None)
                v.pop("duration", None)
            elif isinstance(v, dict):
                strip(v)
strip(data)
with open(sys.argv[2], "w") as f:
    json.dump(data, f, indent=2, sort_keys=True)
    f.write("\n")
PYEOF
  then :; else
    rm -f "$dir/salt.json"
    { echo "exit code: $plain_rc"; echo "--- stdout"; cat "$RUN.out/stdout";
      echo "--- stderr"; cat "$RUN.out/stderr"; } > "$dir/salt.txt"
  fi
  if [ -s "$RUN.out/stderr" ] && [ -f "$dir/salt.json" ]; then
    # keep stderr when Salt printed something there (log lines, warnings)
    cp "$RUN.out/stderr" "$dir/salt.stderr"
  else
    rm -f "$dir/salt.stderr"
  fi
  echo "rc=$plain_rc passthrough_rc=$pt_rc" > "$dir/rc"
  echo "$scn: rc=$plain_rc passthrough_rc=$pt_rc"
done
