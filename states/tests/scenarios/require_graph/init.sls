# require / require_in graph: diamond + chain, match by ID, by name, by module vs id,
# glob, and an sls: requisite on an included file.
include:
  - require_graph.other

# diamond: top <- left, right <- bottom
bottom:
  test.succeed_without_changes:
    - require:
      - test: left
      - id: right

left:
  test.succeed_with_changes:
    - require:
      - top

right:
  test.succeed_without_changes:
    - require:
      - test: top

top:
  test.succeed_without_changes

# chain via require_in: c1 -> c2 -> c3 (c3 written first)
c3:
  test.succeed_without_changes

c2:
  test.succeed_without_changes:
    - require_in:
      - test: c3

c1:
  test.nop:
    - require_in:
      - c2

# match by name (not ID): named_dep has id "by_name_target" and name "the_real_name"
needs_name:
  test.succeed_without_changes:
    - require:
      - test: the_real_name

by_name_target:
  test.succeed_without_changes:
    - name: the_real_name

# module match: `- cmd: modtarget` only matches the cmd.run function of modtarget,
# `- id: modtarget2` matches every function under that ID.
needs_mod:
  test.succeed_without_changes:
    - require:
      - cmd: modtarget

needs_id:
  test.succeed_without_changes:
    - require:
      - id: modtarget2

modtarget:
  test.succeed_without_changes: []
  cmd.run:
    - name: echo modtarget

modtarget2:
  test.succeed_without_changes: []
  cmd.run:
    - name: echo modtarget2

# glob requisite
needs_glob:
  test.succeed_without_changes:
    - require:
      - test: glob_*

glob_b:
  test.succeed_without_changes

glob_a:
  test.succeed_without_changes

# sls requisite across the included file
needs_sls:
  test.succeed_without_changes:
    - require:
      - sls: require_graph.other
