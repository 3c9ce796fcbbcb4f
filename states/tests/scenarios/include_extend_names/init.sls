# include (absolute and relative), extend (add requisite, change arg), names with per-name args
include:
  - include_extend_names.base
  - .sub

local_first:
  test.succeed_without_changes

extend:
  # change an argument of a cmd.run from base.sls
  base_cmd:
    cmd.run:
      - name: echo extended
  # add a requisite to a state from sub/init.sls
  sub_state:
    test.configurable_test_state:
      - require:
        - test: local_first
      - comment: extended comment
  # names entries are extended by ID
  many:
    test.succeed_with_changes:
      - require:
        - local_last

many_local:
  test.configurable_test_state:
    - names:
      - n_one
      - n_two:
        - comment: per-name comment
        - changes: False
      - n_three:
        - result: False
    - changes: True
    - comment: shared comment

local_last:
  test.succeed_without_changes
