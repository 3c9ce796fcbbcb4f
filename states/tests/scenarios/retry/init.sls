# retry: a state that fails once is run again and succeeds; one that always fails
# uses up its attempts; each attempt's result and comment stay in the final comment
flaky:
  cmd.run:
    - name: test -e {{ pillar.get('scratch', '/tmp/brine-scn') }}/marker || (touch {{ pillar.get('scratch', '/tmp/brine-scn') }}/marker; exit 1)
    - retry:
        attempts: 3
        interval: 0

never:
  test.fail_without_changes:
    - retry:
        attempts: 2
        interval: 0

fine:
  test.succeed_without_changes:
    - retry: True
