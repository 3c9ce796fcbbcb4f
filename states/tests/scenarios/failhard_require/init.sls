# failhard state reached as a requisite of a later state, and a failhard state that succeeds
one:
  test.succeed_without_changes:
    - failhard: True

needs_hard:
  test.succeed_with_changes:
    - require:
      - hard

two:
  test.succeed_without_changes

hard:
  test.fail_with_changes:
    - failhard: True

three:
  test.succeed_without_changes
