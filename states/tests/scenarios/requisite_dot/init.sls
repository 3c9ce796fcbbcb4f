a:
  test.succeed_without_changes

b:
  test.succeed_without_changes:
    - require:
      - test.succeed_without_changes: a
