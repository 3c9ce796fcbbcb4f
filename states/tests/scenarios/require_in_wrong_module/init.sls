# *_in requisite whose module does not match the target ID's module (target is cmd, not test).
first:
  test.succeed_without_changes

pushes_onchanges:
  test.succeed_with_changes:
    - onchanges_in:
      - test: receiver

receiver:
  cmd.run:
    - name: echo received
