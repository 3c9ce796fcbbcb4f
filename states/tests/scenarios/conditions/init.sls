{%- set scratch = pillar.get('scratch', '/tmp/brine-scn') %}
# onlyif / unless / creates on cmd.run and on a test state (scratch dir exists when this runs)
cmd_onlyif_false:
  cmd.run:
    - name: echo onlyif-false
    - onlyif: "false"

cmd_onlyif_true:
  cmd.run:
    - name: echo onlyif-true
    - onlyif: "true"

cmd_unless_true:
  cmd.run:
    - name: echo unless-true
    - unless: "true"

cmd_unless_false:
  cmd.run:
    - name: echo unless-false
    - unless: "false"

cmd_creates_existing:
  cmd.run:
    - name: echo creates
    - creates: {{ scratch }}

cmd_creates_missing:
  cmd.run:
    - name: echo creates-missing
    - creates: {{ scratch }}/nope

cmd_onlyif_list:
  cmd.run:
    - name: echo onlyif-list
    - onlyif:
      - "true"
      - "false"

cmd_unless_list:
  cmd.run:
    - name: echo unless-list
    - unless:
      - "false"
      - "true"

test_onlyif_false:
  test.succeed_with_changes:
    - onlyif: "false"

test_unless_true:
  test.succeed_with_changes:
    - unless: "true"

test_creates_existing:
  test.succeed_with_changes:
    - creates: {{ scratch }}

test_onlyif_true:
  test.succeed_with_changes:
    - onlyif: "true"

# a dependent of a state skipped by onlyif (skipped state has result True)
needs_skipped:
  test.succeed_without_changes:
    - onchanges:
      - cmd: cmd_onlyif_false

wait_skipped:
  cmd.wait:
    - name: echo wait-skipped
    - watch:
      - cmd: cmd_unless_true

# onlyif with a non-zero exit code other than 1
cmd_onlyif_exit3:
  cmd.run:
    - name: echo exit3
    - onlyif: "exit 3"
