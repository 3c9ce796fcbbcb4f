changed:
  test.succeed_with_changes

unchanged:
  test.succeed_without_changes

failed:
  test.fail_with_changes

# cmd.wait watching a changed target: mod_watch runs the command
wait_on_changed:
  cmd.wait:
    - name: echo wait-changed
    - watch:
      - test: changed

# cmd.wait watching an unchanged target: nothing runs
wait_on_unchanged:
  cmd.wait:
    - name: echo wait-unchanged
    - watch:
      - test: unchanged

# cmd.run with watch on a changed target: runs once (has changes itself, so no mod_watch)
run_on_changed:
  cmd.run:
    - name: echo run-changed
    - watch:
      - changed

# cmd.run with watch on an unchanged target: runs normally
run_on_unchanged:
  cmd.run:
    - name: echo run-unchanged
    - watch:
      - unchanged

# test state watching a changed target: test.succeed_without_changes has no changes -> test.mod_watch
test_watch_changed:
  test.succeed_without_changes:
    - watch:
      - changed

test_watch_unchanged:
  test.succeed_without_changes:
    - watch:
      - unchanged

# watch on a failed target
wait_on_failed:
  cmd.wait:
    - name: echo wait-failed
    - watch:
      - failed

run_on_failed:
  cmd.run:
    - name: echo run-failed
    - watch:
      - failed

# watch_any: one failed, one changed -> fires
wait_any:
  cmd.wait:
    - name: echo wait-any
    - watch_any:
      - failed
      - changed

wait_any_none:
  cmd.wait:
    - name: echo wait-any-none
    - watch_any:
      - unchanged
      - failed

# watch_in
pushes_watch:
  test.succeed_with_changes:
    - watch_in:
      - cmd: watcher_in

watcher_in:
  cmd.wait:
    - name: echo watched-in

# watch + require mixed
wait_watch_and_require:
  cmd.wait:
    - name: echo watch-and-require
    - require:
      - unchanged
    - watch:
      - changed
