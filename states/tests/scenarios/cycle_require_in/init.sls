# cycle built with require_in: a require_in b, and a requires b (module-qualified)
before:
  test.succeed_without_changes

a:
  test.succeed_without_changes:
    - require:
      - test: b
    - require_in:
      - test: b

b:
  test.succeed_without_changes

after:
  test.succeed_without_changes
