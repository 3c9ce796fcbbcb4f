changed:
  test.succeed_with_changes

unchanged:
  test.succeed_without_changes

failed_changed:
  test.fail_with_changes

on_changed:
  test.succeed_with_changes:
    - onchanges:
      - changed

on_unchanged:
  test.succeed_with_changes:
    - onchanges:
      - unchanged

# onchanges (all-list): fires if ANY listed target changed (onchanges is already "any")
on_mixed:
  test.succeed_without_changes:
    - onchanges:
      - unchanged
      - changed

on_any_mixed:
  test.succeed_without_changes:
    - onchanges_any:
      - unchanged
      - changed

on_any_none:
  test.succeed_without_changes:
    - onchanges_any:
      - unchanged
      - test: unchanged2

unchanged2:
  test.nop

# target failed (with changes)
on_failed:
  test.succeed_without_changes:
    - onchanges:
      - failed_changed

# onchanges_in
pushes_onchanges:
  test.succeed_with_changes:
    - onchanges_in:
      - cmd: receiver

receiver:
  cmd.run:
    - name: echo received

# cmd.run counts as changed
runs_cmd:
  cmd.run:
    - name: echo hi

on_cmd:
  test.succeed_without_changes:
    - onchanges:
      - cmd: runs_cmd

# a state skipped by onchanges, then required by another
needs_skipped:
  test.succeed_without_changes:
    - require:
      - on_unchanged

# onchanges on a skipped state
onchanges_on_skipped:
  test.succeed_without_changes:
    - onchanges:
      - on_unchanged

# one target failed, another changed: onchanges fails, onchanges_any runs
on_failed_and_changed:
  test.succeed_without_changes:
    - onchanges:
      - failed_changed
      - changed

on_any_failed_and_changed:
  test.succeed_without_changes:
    - onchanges_any:
      - failed_changed
      - changed

# onchanges not met but a require is met: still skipped
on_unchanged_with_require:
  test.succeed_without_changes:
    - require:
      - changed
    - onchanges:
      - unchanged

# onchanges target failed WITHOUT changes
failed_plain:
  test.fail_without_changes

on_failed_plain:
  test.succeed_without_changes:
    - onchanges:
      - failed_plain
