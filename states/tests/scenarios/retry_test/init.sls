# retry in test mode: nothing is retried, the comment says what would be
flaky:
  test.succeed_with_changes:
    - retry:
        attempts: 3
        interval: 5
        splay: 2
