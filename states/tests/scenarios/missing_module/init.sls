# The ID exists but under another state module: `- cmd: target` where target is test.*
target:
  test.succeed_without_changes

wrong_module:
  test.succeed_with_changes:
    - require:
      - cmd: target

after:
  test.succeed_with_changes
