# three-state cycle a -> b -> c -> a (module-qualified: not caught at compile time)
before:
  test.succeed_without_changes

a:
  test.succeed_without_changes:
    - require:
      - test: b

b:
  test.succeed_without_changes:
    - require:
      - test: c

c:
  test.succeed_without_changes:
    - require:
      - test: a

after:
  test.succeed_without_changes
