# SPDX-License-Identifier: MIT
# Fixed point (round half to even, exact, checked) and exact sums over buffers read in place:
# identical on the device (32- and 64-bit) and on the host.
try:
    import aii as a
except ImportError:  # CPython, whose output run-tests.py compares with: the host's
    import aii_host as a
from array import array

D2, D3, Q8 = a.DEC(2), a.DEC(3), a.Q(8)
print("formats", a.Q(0), a.Q(62), a.DEC(0), a.DEC(18))

# Parse: rounded half to even at the unit; the extremes of int64 exactly.
for s in ("1.005", "1.015", "-1.005", "0.125", "+7", "-0", "12.50000000000000000000", "0.0049"):
    print("parse", s, a.fx_parse(s, D2))
print("parse", a.fx_parse("92233720368547758.07", D2), a.fx_parse("-92233720368547758.08", D2))
print(
    "parse Q8",
    a.fx_parse("2.375", Q8),
    a.fx_parse("0.001953125", Q8),
    a.fx_parse("0.005859375", Q8),
)

# Format: decimal formats print all their digits, binary ones the shortest exact form.
for v, f in (
    (-150, D2),
    (5, D3),
    (2**63 - 1, D2),
    (-(2**63), a.DEC(18)),
    (608, Q8),
    (-768, Q8),
    (1, a.Q(62)),
    (-(2**63), a.Q(62)),
):
    print("format", v, f, a.fx_format(v, f))

# Arithmetic: exact 128-bit intermediates, halfway cases to even, refusal beyond int64.
print("mul", a.fx_mul(150, 150, D2), a.fx_mul(5, 5, a.DEC(1)), a.fx_mul(15, 5, a.DEC(1)))
print(
    "mul", a.fx_mul(-(2**62), 2, a.Q(0)), a.fx_mul(2**40, 2**40, a.Q(40)), a.fx_mul(-384, 640, Q8)
)
print(
    "div", a.fx_div(100, 300, D2), a.fx_div(1, 8, D2), a.fx_div(3, 8, D2), a.fx_div(-1, 3, a.Q(62))
)
print("muldiv", a.fx_muldiv(2**62, 2**62, 2**62), a.fx_muldiv(7, 3, 2), a.fx_muldiv(5, 1, -2))
print("muldiv", a.fx_muldiv(2**63 - 1, 2**63 - 1, 2**63 - 1), a.fx_muldiv(-(2**63), 1, 1))
print(
    "rescale", a.fx_rescale(608, Q8, D3), a.fx_rescale(2375, D3, Q8), a.fx_rescale(5, D2, a.DEC(1))
)
print("rescale", a.fx_rescale(15, D2, a.DEC(1)), a.fx_rescale(-25, D2, a.DEC(1)))

# Sums: the exact total decides, whatever the order; int32 and int64 items, read in place.
big = 2**63 - 1
print("sum", a.check_sum(array("i", [1, -2, 3]), 2), a.check_sum(array("i", [1, -2, 3]), 3))
print("sum", a.check_sum(array("q", [big, 1, -1]), big), a.check_sum(array("q", [big, -1, 1]), big))
print("sum", a.check_sum(array("q", [-(2**63), -1, 1]), -(2**63)))
for items in ([big, 1], [-(2**63), -1], [big, big, -big]):
    try:
        a.check_sum(array("q", items), 0)
        print("no error")
    except OverflowError as e:
        print("OverflowError:", e)
print("exact", a.exact_sum(array("q", [big] * 4)), a.exact_sum(array("q", [-(2**63)] * 3)))
print("exact", a.exact_sum(array("q")), a.exact_sum(array("i", [2**31 - 1] * 5)))
# 'l' is 4 bytes on 32-bit ports and 8 on 64-bit ones; either is summed at its own width.
print("long", a.exact_sum(array("l", [2**31 - 1, 2**31 - 1, -5])))
m = memoryview(array("i", [10, 20, 30, 40]))
print("memoryview", a.exact_sum(m[1:3]), a.check_sum(m[1:], 90))
n = 1000
print(
    "many",
    a.check_sum(array("i", range(n)), n * (n - 1) // 2),
    a.exact_sum(array("i", [-(2**31)] * n)),
)
