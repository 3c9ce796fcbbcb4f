# use: copy arguments (not name/names/requisites, not args the state already sets) from another state
template:
  test.configurable_test_state:
    - changes: False
    - result: True
    - comment: from template
    - require:
      - first

first:
  test.succeed_without_changes

copies_all:
  test.configurable_test_state:
    - use:
      - test: template

overrides_comment:
  test.configurable_test_state:
    - comment: my own comment
    - use:
      - template

cmd_template:
  cmd.run:
    - name: echo template
    - cwd: /
    - onlyif: "false"

cmd_user:
  cmd.run:
    - name: echo user
    - use:
      - cmd: cmd_template

# use_in: push my args into another state
pusher:
  test.configurable_test_state:
    - comment: pushed comment
    - changes: False
    - use_in:
      - test: receiver

receiver:
  test.configurable_test_state:
    - changes: True

# requisites are not copied by use: the template requires a failing state, the user does not fail
failing:
  test.fail_without_changes

failing_template:
  test.configurable_test_state:
    - comment: from failing template
    - require:
      - failing

user_of_failing:
  test.configurable_test_state:
    - use:
      - failing_template
