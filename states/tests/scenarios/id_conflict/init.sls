include:
  - id_conflict.other

same_id:
  test.succeed_without_changes

b:
  test.succeed_without_changes
