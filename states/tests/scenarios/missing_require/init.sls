# A requisite naming an ID that does not exist.
before:
  test.succeed_without_changes

needs_ghost:
  test.succeed_with_changes:
    - require:
      - test: ghost
      - before

needs_ghost_by_id:
  test.succeed_with_changes:
    - onchanges:
      - test: ghost3
    - watch:
      - ghost2
    - require:
      - before

depends_on_failed_lookup:
  test.succeed_without_changes:
    - require:
      - needs_ghost

after:
  test.succeed_with_changes
