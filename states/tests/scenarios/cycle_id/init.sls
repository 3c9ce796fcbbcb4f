# A requires B, B requires A, written as bare IDs
before:
  test.succeed_without_changes

a:
  test.succeed_without_changes:
    - require:
      - b

b:
  test.succeed_without_changes:
    - require:
      - a

needs_a:
  test.succeed_without_changes:
    - require:
      - a

after:
  test.succeed_without_changes
