# A requires B, B requires A, both written as `- test: <id>` (module-qualified)
before:
  test.succeed_without_changes

a:
  test.succeed_without_changes:
    - require:
      - test: b

b:
  test.succeed_without_changes:
    - require:
      - test: a

after:
  test.succeed_without_changes
