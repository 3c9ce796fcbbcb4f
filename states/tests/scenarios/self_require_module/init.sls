before:
  test.succeed_without_changes

me:
  test.succeed_without_changes:
    - require:
      - test: me

after:
  test.succeed_without_changes
