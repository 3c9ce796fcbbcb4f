before:
  test.succeed_without_changes

me:
  test.succeed_without_changes:
    - require:
      - me

after:
  test.succeed_without_changes
