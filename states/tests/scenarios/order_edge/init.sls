# Edge values of `order:`: two `first`, 0, negative, float, unknown string, large int.
auto_one:
  test.succeed_without_changes

second_first:
  test.succeed_without_changes:
    - order: first

minus_one:
  test.succeed_without_changes:
    - order: -1

bogus_string:
  test.succeed_without_changes:
    - order: sometime

a_first:
  test.succeed_without_changes:
    - order: first

zero:
  test.succeed_without_changes:
    - order: 0

last_one:
  test.succeed_without_changes:
    - order: last

float_half:
  test.succeed_without_changes:
    - order: 1.5

big:
  test.succeed_without_changes:
    - order: 20000

auto_two:
  test.succeed_without_changes

# tie on order 7: the sort key is "<state><name><fun>" -> the `name`, not the ID, decides
aaa_id:
  test.succeed_without_changes:
    - name: zzz_name
    - order: 7

zzz_id:
  test.succeed_without_changes:
    - name: aaa_name
    - order: 7

# tie on order 8 with different functions: "test" + "x" + "nop" vs "test" + "x" + "succeed_..."
tie_fun_s:
  test.succeed_without_changes:
    - name: x
    - order: 8

tie_fun_n:
  test.nop:
    - name: x
    - order: 8
