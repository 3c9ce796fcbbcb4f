# require_in naming an ID that does not exist.
before:
  test.succeed_without_changes

pushes_to_ghost:
  test.succeed_with_changes:
    - require_in:
      - test: ghost

after:
  test.succeed_with_changes
