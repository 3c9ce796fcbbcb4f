# failhard=True on the command line: the first failure stops the run
one:
  test.succeed_with_changes

two:
  test.fail_without_changes

three:
  test.succeed_with_changes
