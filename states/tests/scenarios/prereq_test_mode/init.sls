# prereq: the prereq state runs (for real) only if its target WOULD change (target first run with test=True).
before_changing:
  test.succeed_with_changes:
    - prereq:
      - test: will_change

will_change:
  test.succeed_with_changes

before_unchanging:
  test.succeed_with_changes:
    - prereq:
      - test: wont_change

wont_change:
  test.succeed_without_changes

# prereq on a target that fails in test mode
before_failing:
  test.succeed_with_changes:
    - prereq:
      - fails_real

fails_real:
  test.fail_with_changes

# prereq_in
pre_in_source:
  cmd.run:
    - name: echo prereq-in
    - prereq_in:
      - test: pre_in_target

pre_in_target:
  test.succeed_with_changes

# prereq on cmd.run target (cmd.run in test mode returns result None)
before_cmd:
  test.succeed_without_changes:
    - prereq:
      - cmd: cmd_target

cmd_target:
  cmd.run:
    - name: echo cmd-target

# the prereq state itself fails: the target is then not run
failing_pre:
  test.fail_without_changes:
    - prereq:
      - guarded

guarded:
  test.succeed_with_changes

# target written BEFORE the prereq state
target_first:
  test.succeed_with_changes

pre_after:
  test.succeed_without_changes:
    - prereq:
      - target_first

# prereq on a cmd.run that would not run (unless true)
before_skipped_cmd:
  test.succeed_with_changes:
    - prereq:
      - cmd: skipped_cmd

skipped_cmd:
  cmd.run:
    - name: echo never
    - unless: "true"
