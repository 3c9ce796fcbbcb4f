# brine audit hook: records each command typed in an interactive bash shell for the
# minion's audit beacon. Installed by brine (audit.install_hook); see docs/beacons.md.
[ -n "${BASH_VERSION:-}" ] || return 0
case $- in *i*) ;; *) return 0 ;; esac
[ -z "${__brine_audit_loaded:-}" ] || return 0
__brine_audit_loaded=1
__brine_audit_dir='@SPOOL_DIR@'
__brine_audit_tty=$(tty 2>/dev/null) || __brine_audit_tty=''
__brine_audit_last=''
HISTCONTROL=''
HISTIGNORE=''
__brine_audit_json() {
    local s=$1
    s=${s//\\/\\\\}
    s=${s//\"/\\\"}
    s=${s//$'\n'/\\n}
    s=${s//$'\t'/\\t}
    s=${s//$'\r'/\\r}
    s=${s//[$'\001'-$'\037']/?}
    printf '"%s"' "$s"
}
__brine_audit() {
    local status=$? line num cmd
    line=$(HISTTIMEFORMAT='' builtin history 1)
    line=${line#"${line%%[![:space:]]*}"}
    num=${line%%[!0-9]*}
    cmd=${line#"$num"}
    cmd=${cmd#"${cmd%%[![:space:]]*}"}
    cmd=${cmd#\* }
    if [ -z "$__brine_audit_last" ]; then
        __brine_audit_last=${num:-0}
        return $status
    fi
    if [ -n "$num" ] && [ "$num" != "$__brine_audit_last" ] && [ -n "$cmd" ]; then
        __brine_audit_last=$num
        local f="$__brine_audit_dir/$UID"
        # Created by us, mode 0600, only if absent; then written only if it is ours:
        # a file another user made under our name would leak our commands to them.
        [ -e "$f" ] || (umask 077; set -C; : > "$f") 2>/dev/null
        if [ -O "$f" ] && [ -f "$f" ] && [ ! -L "$f" ]; then
            printf '{"time":%s,"user":%s,"uid":%s,"tty":%s,"cwd":%s,"pid":%s,"command":%s}\n' \
                "$(printf '%(%s)T' -1)" "$(__brine_audit_json "${USER:-$(id -un)}")" "$UID" \
                "$(__brine_audit_json "$__brine_audit_tty")" "$(__brine_audit_json "$PWD")" "$$" \
                "$(__brine_audit_json "$cmd")" >> "$f" 2>/dev/null
        fi
    fi
    return $status
}
readonly -f __brine_audit __brine_audit_json 2>/dev/null
PROMPT_COMMAND="__brine_audit${PROMPT_COMMAND:+;$PROMPT_COMMAND}"
