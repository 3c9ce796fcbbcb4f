base_cmd:
  cmd.run:
    - name: echo original

many:
  test.succeed_with_changes:
    - names:
      - m_b
      - m_a
