# failhard: True on a failing state: the run stops right after it
one:
  test.succeed_with_changes

two:
  test.fail_without_changes:
    - failhard: True

three:
  test.succeed_with_changes

four:
  cmd.run:
    - name: echo four
