# `order:` keyword combined with require / require_in, plus ties.
plain_a:
  test.succeed_without_changes

goes_last:
  test.succeed_without_changes:
    - order: last

plain_b:
  test.succeed_without_changes

order_two:
  test.succeed_without_changes:
    - order: 2

order_one:
  test.succeed_without_changes:
    - order: 1

goes_first:
  test.succeed_without_changes:
    - order: first

# requires a state with auto order: order_two_req must wait for plain_b
order_two_req:
  test.succeed_without_changes:
    - order: 2
    - require:
      - test: plain_b

# require_in pulls the `last` state in front of order_one
last_req_in:
  test.succeed_without_changes:
    - order: last
    - require_in:
      - test: order_one

# same explicit order 5: tie broken by "<state><name><fun>" string, not file order
zeta_tie:
  test.succeed_without_changes:
    - order: 5
alpha_tie:
  test.succeed_without_changes:
    - order: 5
mid_tie:
  cmd.run:
    - name: echo tie
    - order: 5

# `order: first` state requiring an auto-ordered state defined later: pulls it to the front
first_needs:
  test.succeed_without_changes:
    - order: first
    - require:
      - late_target

late_target:
  test.succeed_with_changes
