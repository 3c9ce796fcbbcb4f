{%- set scratch = pillar.get('scratch', '/tmp/brine-scn') %}
# test=True over a mix of states including failing ones and requisites
with_changes:
  test.succeed_with_changes

without_changes:
  test.succeed_without_changes

fail_with:
  test.fail_with_changes

fail_without:
  test.fail_without_changes

nop:
  test.nop

configurable:
  test.configurable_test_state:
    - changes: True
    - result: True
    - comment: configured

configurable_fail:
  test.configurable_test_state:
    - changes: False
    - result: False
    - comment: configured fail

a_cmd:
  cmd.run:
    - name: echo hi

a_cmd_unless:
  cmd.run:
    - name: echo hi
    - unless: "true"

a_wait:
  cmd.wait:
    - name: echo waited
    - watch:
      - with_changes

needs_fail_with:
  test.succeed_without_changes:
    - require:
      - fail_with

needs_fail_without:
  test.succeed_without_changes:
    - require:
      - fail_without

on_changes:
  test.succeed_without_changes:
    - onchanges:
      - with_changes

on_changes_cmd:
  test.succeed_without_changes:
    - onchanges:
      - a_cmd

on_fail:
  test.succeed_without_changes:
    - onfail:
      - fail_with

needs_cmd:
  test.succeed_with_changes:
    - require:
      - a_cmd

a_file:
  file.managed:
    - name: {{ scratch }}/managed.txt
    - contents: hello

gone:
  file.absent:
    - name: {{ scratch }}/nothing-here

hard:
  test.fail_without_changes:
    - failhard: True

after_hard:
  test.succeed_without_changes
