fails:
  test.fail_without_changes

succeeds:
  test.succeed_without_changes

fails_too:
  test.fail_with_changes

any_one_ok:
  test.succeed_with_changes:
    - require_any:
      - fails
      - succeeds

any_none_ok:
  test.succeed_with_changes:
    - require_any:
      - fails
      - fails_too

# require_any with a missing target
any_missing:
  test.succeed_without_changes:
    - require_any:
      - succeeds
      - test: ghost

# require + require_any together
any_plus_require:
  test.succeed_without_changes:
    - require:
      - succeeds
    - require_any:
      - fails
      - fails_too

# requisites on states that appear under `names`
pkgs:
  test.succeed_with_changes:
    - names:
      - name_one
      - name_two
      - name_three

needs_one_name:
  test.succeed_without_changes:
    - require:
      - test: name_two

needs_whole_id:
  test.succeed_without_changes:
    - require:
      - pkgs

mixed_names:
  test.configurable_test_state:
    - names:
      - mixed_ok:
        - result: True
      - mixed_bad:
        - result: False
    - changes: False

needs_mixed_id:
  test.succeed_without_changes:
    - require:
      - mixed_names

needs_mixed_ok_name:
  test.succeed_without_changes:
    - require:
      - mixed_ok

needs_mixed_bad_name:
  test.succeed_without_changes:
    - require:
      - test: mixed_bad

watches_names:
  cmd.wait:
    - name: echo names-changed
    - watch:
      - test: name_one

# require_in from a names state
names_require_in:
  test.succeed_without_changes:
    - names:
      - rin_a
      - rin_b
    - require_in:
      - test: target_of_names

target_of_names:
  test.succeed_without_changes:
    - order: first
