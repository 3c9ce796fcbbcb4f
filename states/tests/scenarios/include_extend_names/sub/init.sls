include:
  - .leaf

sub_state:
  test.configurable_test_state:
    - changes: False
    - comment: original comment
