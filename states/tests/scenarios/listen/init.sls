# listen: mod_watch of the listener is deferred to the end of the run
changed:
  test.succeed_with_changes

listener:
  cmd.run:
    - name: echo listener
    - listen:
      - test: changed

unchanged:
  test.succeed_without_changes

quiet_listener:
  cmd.run:
    - name: echo quiet-listener
    - listen:
      - unchanged

middle:
  test.succeed_without_changes

pushes_listen:
  test.succeed_with_changes:
    - listen_in:
      - cmd: listen_in_target

listen_in_target:
  cmd.run:
    - name: echo listen-in

wait_listener:
  cmd.wait:
    - name: echo wait-listener
    - listen:
      - changed

last:
  test.succeed_without_changes
