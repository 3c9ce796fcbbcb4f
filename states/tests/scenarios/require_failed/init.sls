# require on failed states
fails:
  test.fail_without_changes

fails_with_changes:
  test.fail_with_changes

configured_fail:
  test.configurable_test_state:
    - changes: False
    - result: False
    - comment: configured failure

ok:
  test.succeed_with_changes

needs_fails:
  test.succeed_with_changes:
    - require:
      - fails

needs_ok_and_fail:
  test.succeed_with_changes:
    - require:
      - ok
      - fails_with_changes

needs_configured:
  cmd.run:
    - name: echo never
    - require:
      - test: configured_fail

# chain: dependent of a dependent
needs_needs_fails:
  test.succeed_without_changes:
    - require:
      - needs_fails

# cmd.run failing (exit 1) as a requisite
cmd_fails:
  cmd.run:
    - name: "false"

needs_cmd_fails:
  test.succeed_without_changes:
    - require:
      - cmd: cmd_fails

independent:
  test.succeed_without_changes

# two failed requisites: Salt joins "sls.id" keys from a Python set (order not stable)
needs_two_fails:
  test.succeed_without_changes:
    - require:
      - fails
      - configured_fail
