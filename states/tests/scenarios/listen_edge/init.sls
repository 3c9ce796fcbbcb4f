# listen edge cases: target failed with changes; listen to a missing module-qualified target;
# listener whose own run fails.
failed_changed:
  test.fail_with_changes

listens_failed:
  cmd.run:
    - name: echo listens-failed
    - listen:
      - test: failed_changed

listens_missing:
  cmd.run:
    - name: echo listens-missing
    - listen:
      - test: ghost

changed:
  test.succeed_with_changes

failing_listener:
  cmd.run:
    - name: "false"
    - listen:
      - changed

test_listener:
  test.succeed_without_changes:
    - listen:
      - changed
