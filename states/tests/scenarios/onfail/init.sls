fails:
  test.fail_without_changes

succeeds:
  test.succeed_with_changes

succeeds_quiet:
  test.succeed_without_changes

on_fail_failed:
  test.succeed_with_changes:
    - onfail:
      - fails

on_fail_succeeded:
  test.succeed_with_changes:
    - onfail:
      - succeeds

# plain onfail with one failed + one succeeded target: runs (onfail is "any")
on_fail_mixed:
  test.succeed_without_changes:
    - onfail:
      - fails
      - succeeds

on_fail_any_mixed:
  test.succeed_without_changes:
    - onfail_any:
      - fails
      - succeeds

on_fail_any_none:
  test.succeed_without_changes:
    - onfail_any:
      - succeeds
      - succeeds_quiet

on_fail_all_mixed:
  test.succeed_without_changes:
    - onfail_all:
      - fails
      - succeeds

fails_too:
  test.fail_with_changes

on_fail_all_all:
  test.succeed_without_changes:
    - onfail_all:
      - fails
      - fails_too

# onfail_in
pushes_onfail:
  test.fail_without_changes:
    - onfail_in:
      - cmd: recovery

recovery:
  cmd.run:
    - name: echo recovering

# onfail on a state that was itself skipped by onfail
onfail_of_skipped:
  test.succeed_without_changes:
    - onfail:
      - on_fail_succeeded

# onfail state that itself fails
on_fail_but_fails:
  test.fail_without_changes:
    - onfail:
      - fails

# onfail + require (require met)
on_fail_with_require:
  test.succeed_without_changes:
    - require:
      - succeeds
    - onfail:
      - fails

# onfail + onchanges together
on_fail_and_onchanges:
  test.succeed_without_changes:
    - onfail:
      - fails
    - onchanges:
      - succeeds_quiet

# onfail met, but a require on the same failed state
on_fail_with_failed_require:
  test.succeed_without_changes:
    - require:
      - fails_too
    - onfail:
      - fails
