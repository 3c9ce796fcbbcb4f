include:
  - include_missing.nothere

a:
  test.succeed_without_changes
