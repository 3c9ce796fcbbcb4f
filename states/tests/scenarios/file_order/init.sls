first:
  test.succeed_without_changes

second:
  test.succeed_without_changes: []
  cmd.run:
    - name: echo second

third:
  test.nop

fourth:
  cmd.run:
    - name: "true"
  test.succeed_with_changes: []

fifth:
  test.succeed_with_changes
