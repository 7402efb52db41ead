#!/usr/bin/env python3
"""Deterministic generator of the (gold, prediction) corpus for the `math` verifier.

Standard library only, fixed seed: running it twice gives the same file. Each line of the
output is {"gold": ..., "prediction": ..., "category": ...}. The category is
`ANSWER_TYPE/TEMPLATE/INTENT`, where INTENT says what the generator meant the prediction to
be (`same`: the gold written the same way, `equiv`: an equivalent form, `wrong`: a different
value, often a near miss, `none`: no final answer). The intent is only a label for browsing;
the reference verdict is math-verify's (see compare.py), never the intent.

Usage: python3 bench/math-verify/make_corpus.py [OUT] [N]
(default OUT: crates/autotune-verify/tests/data/math/corpus.jsonl, N: 1200)
"""

import json
import math
import os
import random
import sys
from fractions import Fraction

SEED = 20260311


def frac_latex(fr, style="frac"):
    sign = "-" if fr < 0 else ""
    fr = abs(fr)
    if fr.denominator == 1:
        return f"{sign}{fr.numerator}"
    if style == "dfrac":
        return f"{sign}\\dfrac{{{fr.numerator}}}{{{fr.denominator}}}"
    if style == "tfrac":
        return f"{sign}\\tfrac{{{fr.numerator}}}{{{fr.denominator}}}"
    if style == "slash":
        return f"{sign}{fr.numerator}/{fr.denominator}"
    if style == "short" and fr.numerator < 10 and fr.denominator < 10:
        return f"{sign}\\frac{fr.numerator}{fr.denominator}"
    return f"{sign}\\frac{{{fr.numerator}}}{{{fr.denominator}}}"


def dec(x, places):
    return f"{x:.{places}f}"


# ---------------------------------------------------------------------------------------
# Answer types: each returns (gold, [equivalent forms], [wrong forms]); the first
# equivalent form is the gold written as the model would most likely write it.
# ---------------------------------------------------------------------------------------


def a_integer(r):
    n = r.randint(0, 999)
    eq = [str(n), f"{n}.0", f"{n}.00", f"\\text{{{n}}}"]
    wrong = [str(n + 1), str(n - 1), str(n + 10), str(n * 2), str(n + r.randint(2, 9))]
    return str(n), eq, wrong


def a_negative(r):
    n = -r.randint(1, 300)
    eq = [str(n), f"-{abs(n)}.0", f"{{-{abs(n)}}}", f"-{{{abs(n)}}}"]
    wrong = [str(-n), str(n - 1), str(n + 1)]
    return str(n), eq, wrong


def a_thousands(r):
    n = r.randint(1000, 9_999_999)
    comma = f"{n:,}"
    eq = [comma, str(n), comma.replace(",", "{,}"), comma.replace(",", "\\,"), f"{n}.00"]
    wrong = [str(n + 1000), str(n // 10), f"{n + 1:,}", str(n - 100)]
    gold = comma if r.random() < 0.5 else str(n)
    return gold, eq, wrong


def a_decimal(r):
    places = r.choice([1, 2, 2, 3])
    x = round(r.uniform(0.05, 99.0), places)
    s = dec(x, places)
    fr = Fraction(s)
    eq = [s, s + "0", frac_latex(fr), frac_latex(fr, "slash")]
    if s.startswith("0."):
        eq.append(s[1:])
    step = 10 ** -places
    wrong = [dec(x + step, places), dec(x - step, places), dec(x * 10, places), dec(round(x), 0)]
    return s, eq, wrong


def a_fraction(r):
    while True:
        p, q = r.randint(1, 30), r.randint(2, 31)
        fr = Fraction(p, q)
        if fr.denominator > 1:
            break
    if r.random() < 0.25:
        fr = -fr
    gold = frac_latex(fr, r.choice(["frac", "frac", "frac", "dfrac"]))
    k = r.randint(2, 4)
    num, den = fr.numerator, fr.denominator
    eq = [
        frac_latex(fr),
        frac_latex(fr, "dfrac"),
        frac_latex(fr, "tfrac"),
        frac_latex(fr, "slash"),
        frac_latex(fr, "short"),
        f"\\frac{{{num * k}}}{{{den * k}}}",
        dec(num / den, 6) if len(str(num / den)) > 8 else repr(num / den),
    ]
    if num < 0:
        eq.append(f"\\frac{{{abs(num)}}}{{-{den}}}")
        eq.append(f"-\\left(\\frac{{{abs(num)}}}{{{den}}}\\right)")
    wrong = [
        frac_latex(Fraction(den, num)),
        frac_latex(-fr),
        frac_latex(fr + Fraction(1, den)),
        dec(num / den, 2),
        f"\\frac{{{num + 1}}}{{{den}}}",
    ]
    return gold, eq, wrong


def a_mixed(r):
    w, p, q = r.randint(1, 9), r.randint(1, 7), r.randint(2, 9)
    fr = Fraction(p, q)
    if fr.denominator == 1 or fr >= 1:
        fr = Fraction(1, q)
    total = w + fr
    gold = f"{w}\\frac{{{fr.numerator}}}{{{fr.denominator}}}"
    eq = [gold, f"{w} \\frac{{{fr.numerator}}}{{{fr.denominator}}}", frac_latex(total),
          frac_latex(total, "slash"), dec(float(total), 6) if total.denominator not in (2, 4, 5, 8) else str(float(total))]
    wrong = [frac_latex(total + 1), frac_latex(Fraction(w * fr.numerator, fr.denominator)),
             f"{w + 1}\\frac{{{fr.numerator}}}{{{fr.denominator}}}", dec(float(total), 1)]
    return gold, eq, wrong


def a_sqrt(r):
    a, b = r.randint(1, 6), r.choice([2, 3, 5, 6, 7, 10, 11])
    coef = "" if a == 1 else str(a)
    gold = f"{coef}\\sqrt{{{b}}}"
    val = a * math.sqrt(b)
    eq = [gold, f"\\sqrt{{{a * a * b}}}", f"{coef}\\sqrt{b}", f"{coef} \\sqrt {b}", dec(val, 6),
          f"{coef}\\sqrt{{{b}}}".replace("\\sqrt", "\\sqrt ")]
    if b in (2, 3):
        eq.append(f"\\frac{{{a * b}}}{{\\sqrt{{{b}}}}}")
    wrong = [f"{b}\\sqrt{{{a}}}" if a > 1 else f"\\sqrt{{{b + 1}}}", f"{a + 1}\\sqrt{{{b}}}", dec(val, 2),
             f"{a * a * b}", f"\\sqrt{{{a * b}}}"]
    return gold, eq, wrong


def a_sqrt_frac(r):
    a, b = r.randint(1, 5), r.choice([2, 3, 5])
    q = r.choice([2, 3, 4, 6])
    coef = "" if a == 1 else str(a)
    gold = f"\\frac{{{coef}\\sqrt{{{b}}}}}{{{q}}}"
    val = a * math.sqrt(b) / q
    eq = [gold, f"\\frac{{{a}}}{{{q}}}\\sqrt{{{b}}}", f"{coef}\\sqrt{{{b}}}/{q}", dec(val, 6)]
    wrong = [f"\\frac{{{coef}\\sqrt{{{b}}}}}{{{q + 1}}}", f"\\frac{{{q}}}{{{coef}\\sqrt{{{b}}}}}", dec(val, 3)]
    return gold, eq, wrong


def a_pi(r):
    fr = Fraction(r.randint(1, 12), r.choice([1, 1, 2, 3, 4, 6]))
    if fr.denominator == 1:
        n = fr.numerator
        gold = "\\pi" if n == 1 else f"{n}\\pi"
        eq = [gold, f"{n} \\pi", f"\\pi \\cdot {n}" if n > 1 else "\\pi", dec(n * math.pi, 6)]
        wrong = [f"{n + 1}\\pi", f"{n * 2}\\pi", dec(n * math.pi, 2), str(n)]
    else:
        p, q = fr.numerator, fr.denominator
        num = "\\pi" if p == 1 else f"{p}\\pi"
        gold = f"\\frac{{{num}}}{{{q}}}"
        eq = [gold, f"\\frac{{{p}}}{{{q}}}\\pi", f"{num}/{q}", f"\\dfrac{{{num}}}{{{q}}}", dec(p * math.pi / q, 6)]
        wrong = [f"\\frac{{{num}}}{{{q + 1}}}", f"\\frac{{{q}\\pi}}{{{p}}}" if p != q else "2\\pi", dec(p * math.pi / q, 2)]
    return gold, eq, wrong


def a_percent(r):
    n = r.choice([r.randint(1, 99), r.randint(1, 19) * 5])
    gold = r.choice([f"{n}\\%", f"{n}\\%", f"{n}"])
    eq = [f"{n}\\%", f"{n}", f"{n}%", f"{n} \\%", f"{n}\\text{{%}}", dec(n / 100, 2), f"{n} percent"]
    wrong = [f"{n + 1}\\%", f"{100 - n}\\%" if n != 50 else "25\\%", f"{n / 10:g}\\%", f"{n * 2}\\%"]
    return gold, eq, wrong


def a_set(r):
    k = r.randint(2, 4)
    elems = sorted(r.sample(range(-9, 15), k))
    strs = [str(e) for e in elems]
    gold = "\\{" + ", ".join(strs) + "\\}"
    shuffled = strs[:]
    r.shuffle(shuffled)
    eq = [gold, "\\{" + ",".join(shuffled) + "\\}", ", ".join(strs), ", ".join(shuffled),
          "\\left\\{" + ", ".join(strs) + "\\right\\}"]
    bad = strs[:]
    bad[-1] = str(elems[-1] + 1)
    wrong = ["\\{" + ", ".join(bad) + "\\}", "\\{" + ", ".join(strs[:-1]) + "\\}", ", ".join(strs[1:]),
             "\\{" + ", ".join(strs + [str(elems[-1] + 2)]) + "\\}"]
    return gold, eq, wrong


def a_roots(r):
    a, b = r.sample(range(-8, 9), 2)
    gold = f"{min(a, b)}, {max(a, b)}"
    eq = [gold, f"{max(a, b)}, {min(a, b)}", f"x = {a}, x = {b}" if r.random() < 0.3 else f"{a} \\text{{ and }} {b}",
          f"\\{{{a}, {b}\\}}", f"x={a} \\text{{ or }} x={b}"]
    wrong = [f"{a}, {-b}", f"{a}", f"{-a}, {-b}"]
    return gold, eq, wrong


def a_interval(r):
    a = r.randint(-9, 5)
    b = a + r.randint(1, 9)
    lo, hi = r.choice(["[", "("]), r.choice(["]", ")"])
    kind = r.random()
    if kind < 0.2:
        gold = f"(-\\infty, {b}{hi if hi == ')' else ']'}"
        eq = [gold, f"(-\\infty,{b}{hi})".replace("))", ")").replace("])", "]"),
              f"\\left(-\\infty, {b}\\right{hi}"]
        wrong = [f"(-\\infty, {b + 1}{hi}", f"({b}, \\infty)", f"(-\\infty, {b}{')' if hi == ']' else ']'}"]
        return gold, eq, wrong
    if kind < 0.35:
        gold = f"{lo}{a}, \\infty)"
        eq = [gold, f"{lo}{a},\\infty)", f"\\left{lo}{a}, \\infty\\right)"]
        wrong = [f"{'(' if lo == '[' else '['}{a}, \\infty)", f"{lo}{a + 1}, \\infty)", f"(-\\infty, {a}]"]
        return gold, eq, wrong
    gold = f"{lo}{a}, {b}{hi}"
    eq = [gold, f"{lo}{a},{b}{hi}", f"\\left{lo} {a}, {b} \\right{hi}"]
    flip_lo = "(" if lo == "[" else "["
    flip_hi = ")" if hi == "]" else "]"
    wrong = [f"{flip_lo}{a}, {b}{hi}", f"{lo}{a}, {b}{flip_hi}", f"{lo}{a}, {b + 1}{hi}", f"{lo}{a - 1}, {b}{hi}"]
    return gold, eq, wrong


def a_tuple(r):
    k = r.choice([2, 2, 3])
    vals = [r.randint(-9, 9) for _ in range(k)]
    if k == 2 and vals[0] >= vals[1] and r.random() < 0.5:
        vals.reverse()
    s = ", ".join(map(str, vals))
    gold = f"({s})"
    eq = [gold, f"({','.join(map(str, vals))})", f"\\left( {s} \\right)"]
    if k == 2:
        fr = Fraction(vals[0], 2)
        gold2 = f"\\left({frac_latex(fr)}, {vals[1]}\\right)"
        if r.random() < 0.3:
            gold = f"({frac_latex(fr)}, {vals[1]})"
            eq = [gold, gold2, f"({float(fr)}, {vals[1]})"]
            vals = [fr, vals[1]]
    swapped = list(reversed(vals))
    wrong = [f"({', '.join(map(lambda v: frac_latex(Fraction(v)), swapped))})",
             f"({', '.join(map(lambda v: frac_latex(Fraction(v) + 1), vals))})",
             f"({', '.join([frac_latex(Fraction(vals[0]))] + [frac_latex(-Fraction(v)) for v in vals[1:]])})"]
    return gold, eq, wrong


def poly_str(coefs, var="x"):
    # coefs from highest degree
    deg = len(coefs) - 1
    out = ""
    for i, c in enumerate(coefs):
        p = deg - i
        if c == 0:
            continue
        sign = "-" if c < 0 else "+"
        a = abs(c)
        if p == 0:
            term = str(a)
        else:
            term = ("" if a == 1 else str(a)) + var + (f"^{p}" if p > 1 else "")
        if not out:
            out = ("-" if c < 0 else "") + term
        else:
            out += f" {sign} {term}"
    return out or "0"


def a_poly(r):
    a, b = r.randint(-6, 6), r.randint(-6, 6)
    if a == b:
        b += 1
    # (x - a)(x - b) = x^2 - (a+b)x + ab
    gold = poly_str([1, -(a + b), a * b])
    fa = f"(x {'-' if a >= 0 else '+'} {abs(a)})" if a != 0 else "x"
    fb = f"(x {'-' if b >= 0 else '+'} {abs(b)})" if b != 0 else "x"
    eq = [gold, f"{fa}{fb}", f"{a * b} + {-(a + b)}x + x^2".replace("+ -", "- "), gold.replace(" ", "")]
    wrong = [poly_str([1, (a + b), a * b]), poly_str([1, -(a + b), a * b + 1]), poly_str([1, -(a + b)]),
             poly_str([2, -(a + b), a * b])]
    return gold, eq, wrong


def a_expr(r):
    kind = r.randint(0, 3)
    n = r.randint(2, 9)
    if kind == 0:
        gold = f"\\frac{{x+{n}}}{{x-1}}"
        eq = [gold, f"\\frac{{{n}+x}}{{x-1}}", f"(x+{n})/(x-1)", f"1 + \\frac{{{n + 1}}}{{x-1}}"]
        wrong = [f"\\frac{{x-{n}}}{{x-1}}", f"\\frac{{x+{n}}}{{x+1}}", f"\\frac{{x+{n + 1}}}{{x-1}}"]
    elif kind == 1:
        gold = f"{n}x^{{2}}y"
        eq = [gold, f"{n}yx^2", f"{n} x^2 y", f"{n}x \\cdot xy"]
        wrong = [f"{n}xy^2", f"{n + 1}x^2y", f"{n}x^3y"]
    elif kind == 2:
        gold = f"{n}a+{n}b"
        eq = [gold, f"{n}(a+b)", f"{n}b + {n}a"]
        wrong = [f"{n}a + b", f"{n}(a-b)", f"{n + 1}(a+b)"]
    else:
        gold = f"\\frac{{1}}{{{n}}}x^{{2}}"
        eq = [gold, f"\\frac{{x^2}}{{{n}}}", f"x^2/{n}", f"\\frac{{x^{{2}}}}{{{n}}}"]
        wrong = [f"\\frac{{x}}{{{n}}}", f"{n}x^2", f"\\frac{{x^2}}{{{n + 1}}}"]
    return gold, eq, wrong


def a_equation(r):
    var = r.choice(["x", "y", "k", "n", "a"])
    v = r.randint(-20, 40)
    kind = r.random()
    if kind < 0.5:
        gold = f"{var} = {v}"
        eq = [gold, str(v), f"{var}={v}", f"{v}"]
        wrong = [f"{var} = {v + 1}", str(-v) if v else "1", f"{var} = {v * 2}"]
    elif kind < 0.75:
        gold = str(v)
        eq = [f"{var} = {v}", f"{var}={v}", str(v)]
        wrong = [f"{var} = {v - 1}", f"{var} = {-v}" if v else f"{var} = 2"]
    else:
        m, c = r.randint(1, 5), r.randint(-9, 9)
        gold = f"y = {m}x {'+' if c >= 0 else '-'} {abs(c)}".replace("1x", "x") if m == 1 else f"y = {m}x {'+' if c >= 0 else '-'} {abs(c)}"
        eq = [gold, f"y = {c} + {m}x".replace("+ -", "- ") if m != 1 else f"y = {c} + x", gold.replace(" ", "")]
        wrong = [f"y = {m + 1}x {'+' if c >= 0 else '-'} {abs(c)}", f"y = {m}x {'+' if c < 0 else '-'} {abs(c)}"]
    return gold, eq, wrong


def a_text(r):
    word = r.choice(["Monday", "Friday", "even", "odd", "Alice", "Bob", "yes", "no", "north", "triangle",
                     "circle", "never", "impossible", "Tuesday"])
    gold = f"\\text{{{word}}}"
    eq = [gold, f"\\text{{{word.lower()}}}", f"\\textbf{{{word}}}", f"\\mathrm{{{word}}}", word]
    other = r.choice(["Sunday", "Carol", "maybe", "square", "south", "always"])
    wrong = [f"\\text{{{other}}}", other]
    return gold, eq, wrong


def a_choice(r):
    letter = r.choice("ABCDE")
    gold = r.choice([letter, f"\\text{{({letter})}}", f"({letter})", f"\\text{{{letter}}}"])
    eq = [letter, f"\\text{{{letter}}}", f"({letter})", f"\\textbf{{({letter})}}", f"\\text{{({letter})}}", f"\\mathrm{{{letter}}}"]
    other = r.choice([c for c in "ABCDE" if c != letter])
    wrong = [other, f"({other})", f"\\text{{{other}}}"]
    return gold, eq, wrong


def a_units(r):
    n = r.randint(2, 500)
    unit = r.choice(["cm", "m", "km", "kg", "dollars", "meters", "inches", "hours", "minutes", "square units",
                     "feet", "degrees", "mph", "cents", "sq m"])
    gold = str(n) if r.random() < 0.7 else f"{n}\\text{{ {unit}}}"
    eq = [f"{n}\\text{{ {unit}}}", f"{n} \\text{{{unit}}}", f"{n}\\ \\text{{{unit}}}", f"{n} \\mbox{{ {unit}}}",
          f"\\${n}" if unit == "dollars" else f"{n}\\,\\mathrm{{{unit.split()[0]}}}", f"{n}", f"{n}^2 \\text{{ cm}}" if False else f"{n}\\text{{{unit}}}^2"]
    wrong = [f"{n + 1}\\text{{ {unit}}}", f"{n * 10} \\text{{{unit}}}", f"{n - 2}"]
    return gold, eq, wrong


def a_money(r):
    cents = r.randint(100, 99999)
    d = f"{cents / 100:.2f}"
    gold = r.choice([d, f"\\${d}", f"\\$ {d}"])
    eq = [d, f"\\${d}", f"\\$ {d}", f"{d} \\text{{ dollars}}", d.rstrip("0").rstrip(".") if d.endswith("0") else d]
    wrong = [f"{(cents + 1) / 100:.2f}", f"{(cents + 100) / 100:.2f}", f"\\${(cents * 10) / 100:.2f}", f"{cents}"]
    return gold, eq, wrong


def a_degrees(r):
    n = r.choice([15, 30, 36, 45, 60, 72, 75, 90, 105, 120, 135, 150, 162])
    gold = r.choice([f"{n}^\\circ", f"{n}^{{\\circ}}", f"{n}"])
    eq = [f"{n}^\\circ", f"{n}^{{\\circ}}", f"{n}", f"{n}\\text{{ degrees}}", f"{n}°"]
    wrong = [f"{n + 5}^\\circ", f"{180 - n}^\\circ" if n != 90 else "45^\\circ", f"{n / 2:g}"]
    return gold, eq, wrong


def a_scientific(r):
    m = round(r.uniform(1.1, 9.9), 1)
    e = r.randint(3, 8)
    gold = f"{m} \\times 10^{{{e}}}"
    val = int(round(m * 10 ** e))
    eq = [gold, f"{m}\\times10^{e}", str(val), f"{val:,}", f"{m}e{e}" if False else f"{m} \\cdot 10^{{{e}}}"]
    wrong = [f"{m} \\times 10^{{{e + 1}}}", f"{m + 0.1:.1f} \\times 10^{{{e}}}", str(val // 10)]
    return gold, eq, wrong


def a_repeating(r):
    q = r.choice([3, 6, 7, 9, 11, 12])
    p = r.randint(1, q - 1)
    fr = Fraction(p, q)
    if fr.denominator == 1:
        fr = Fraction(1, 3)
    gold = frac_latex(fr)
    x = fr.numerator / fr.denominator
    eq = [gold, dec(x, 6), dec(x, 7), dec(x, 8)]
    wrong = [dec(x, 2), dec(x, 3), dec(x, 4), dec(x, 5)]
    return gold, eq, wrong


def a_complex(r):
    a, b = r.randint(-9, 9), r.randint(1, 9)
    gold = f"{a} + {b}i" if a else f"{b}i"
    eq = [gold, f"{b}i + {a}" if a else f"{b} i", gold.replace(" ", "")]
    wrong = [f"{a} - {b}i" if a else f"-{b}i", f"{b} + {a}i" if a else f"{b}", f"{a + 1} + {b}i"]
    return gold, eq, wrong


def a_inequality(r):
    v = r.randint(-9, 9)
    op, iop, interval = r.choice([(">", "<", f"({v}, \\infty)"), ("\\geq", "\\leq", f"[{v}, \\infty)"),
                                  ("<", ">", f"(-\\infty, {v})"), ("\\le", "\\ge", f"(-\\infty, {v}]")])
    gold = f"x {op} {v}"
    eq = [gold, f"{v} {iop} x", f"x{op}{v}", interval]
    wrong = [f"x {iop} {v}", f"x {op} {v + 1}"]
    return gold, eq, wrong


def a_matrix(r):
    vals = [r.randint(-5, 9) for _ in range(4)]
    gold = "\\begin{pmatrix} %d & %d \\\\ %d & %d \\end{pmatrix}" % tuple(vals)
    eq = [gold, gold.replace("pmatrix", "bmatrix")]
    w = vals[:]
    w[3] += 1
    wrong = ["\\begin{pmatrix} %d & %d \\\\ %d & %d \\end{pmatrix}" % tuple(w),
             "\\begin{pmatrix} %d & %d \\\\ %d & %d \\end{pmatrix}" % (vals[0], vals[2], vals[1], vals[3])]
    return gold, eq, wrong


def a_log_trig(r):
    kind = r.randint(0, 3)
    if kind == 0:
        gold = "\\frac{\\sqrt{3}}{2}"
        eq = [gold, "\\sin 60^\\circ" if False else "\\frac{1}{2}\\sqrt{3}", "0.866025", "\\sqrt{3}/2"]
        wrong = ["\\frac{1}{2}", "\\frac{\\sqrt{2}}{2}", "0.87"]
    elif kind == 1:
        n = r.randint(2, 6)
        gold = f"\\log_2 {2 ** n}" if False else str(n)
        eq = [str(n), f"\\log_2 {{{2 ** n}}}", f"\\log_{{2}}({2 ** n})"]
        wrong = [str(n + 1), f"\\log_2 {{{2 ** (n + 1)}}}"]
    elif kind == 2:
        n = r.randint(2, 5)
        gold = f"e^{{{n}}}"
        eq = [gold, f"e^{n}", dec(math.e ** n, 6)]
        wrong = [f"e^{{{n + 1}}}", dec(math.e ** n, 1), f"{n}e"]
    else:
        n = r.randint(2, 7)
        gold = f"\\binom{{{n + 3}}}{{2}}"
        val = (n + 3) * (n + 2) // 2
        eq = [str(val), gold, f"\\dbinom{{{n + 3}}}{{2}}"]
        wrong = [str(val + 1), str((n + 3) * (n + 2))]
        gold = str(val) if r.random() < 0.5 else gold
    return gold, eq, wrong


ANSWER_TYPES = [
    ("integer", a_integer, 12),
    ("negative", a_negative, 5),
    ("thousands", a_thousands, 5),
    ("decimal", a_decimal, 6),
    ("fraction", a_fraction, 10),
    ("mixed", a_mixed, 3),
    ("sqrt", a_sqrt, 6),
    ("sqrt_frac", a_sqrt_frac, 3),
    ("pi", a_pi, 5),
    ("percent", a_percent, 5),
    ("set", a_set, 4),
    ("roots", a_roots, 3),
    ("interval", a_interval, 5),
    ("tuple", a_tuple, 5),
    ("poly", a_poly, 4),
    ("expr", a_expr, 4),
    ("equation", a_equation, 5),
    ("text", a_text, 3),
    ("choice", a_choice, 4),
    ("units", a_units, 4),
    ("money", a_money, 3),
    ("degrees", a_degrees, 3),
    ("scientific", a_scientific, 2),
    ("repeating", a_repeating, 3),
    ("complex", a_complex, 2),
    ("inequality", a_inequality, 2),
    ("matrix", a_matrix, 1),
    ("misc", a_log_trig, 2),
]

# ---------------------------------------------------------------------------------------
# Chains of thought
# ---------------------------------------------------------------------------------------

OPENERS = [
    "Let's solve this step by step.",
    "We need to find the requested quantity.",
    "To solve this problem, I'll set up the equations carefully.",
    "Okay, so I need to figure this out. Let me start by reading the problem again.",
    "First, let's understand what the problem is asking.",
    "Let me think about this.",
    "## Step 1: Understand the problem",
    "We begin by simplifying the given expression.",
    "<think>\nHmm, let me work through this carefully.",
]


def step_sentence(r):
    a, b = r.randint(2, 30), r.randint(2, 30)
    c = r.randint(2, 9)
    forms = [
        lambda: f"First, we compute ${a} \\times {b} = {a * b}$.",
        lambda: f"Adding {a} and {b} gives {a + b}.",
        lambda: f"So we have $x + {a} = {a + b}$, which means $x = {b}$.",
        lambda: f"Next, note that $\\frac{{{a * c}}}{{{c}}} = {a}$.",
        lambda: f"The total cost is {a} * {b} = {a * b} dollars.",
        lambda: f"Then subtract: {a + b} - {b} = {a}.",
        lambda: f"We can rewrite this as \\[{a}y^2 - {b}y = 0,\\] so $y({a}y - {b}) = 0$.",
        lambda: f"Since the triangle has sides {a}, {b} and {c}, we use the triangle inequality.",
        lambda: f"There are {a} students in the first group and {b} in the second.",
        lambda: f"Squaring both sides, $({a})^2 = {a * a}$.",
        lambda: f"By the Pythagorean theorem, $a^2 + b^2 = c^2$.",
        lambda: f"Let $n$ be the number of days. Then $ {c}n = {c * a}$, so $n = {a}$.",
        lambda: f"Wait, let me double-check that. {a} + {b} = {a + b}. Yes.",
        lambda: f"The probability of each outcome is $\\frac{{1}}{{{c}}}$.",
        lambda: f"Multiplying by {c}: ${c} \\cdot {a} = {c * a}$.",
        lambda: f"## Step {c}: Simplify\nDividing both sides by {c} gives the result.",
        lambda: f"Using the quadratic formula, $x = \\frac{{-b \\pm \\sqrt{{b^2-4ac}}}}{{2a}}$.",
        lambda: f"This is about {a}% of the total.",
        lambda: f"So the rate is {a}/{b} per hour.",
    ]
    return r.choice(forms)()


def cot_body(r, n_min=1, n_max=5):
    parts = [r.choice(OPENERS)]
    for _ in range(r.randint(n_min, n_max)):
        parts.append(step_sentence(r))
    sep = r.choice([" ", "\n", "\n\n"])
    return sep.join(parts)


def plainish(ans):
    """How a model writes the answer in running text, outside math mode."""
    return ans


TEMPLATES = {
    "boxed_end": lambda r, body, a: f"{body}\n\nTherefore, the answer is $\\boxed{{{a}}}$.",
    "boxed_display": lambda r, body, a: f"{body}\n\n\\[\n\\boxed{{{a}}}\n\\]",
    "boxed_bare": lambda r, body, a: f"{body}\nThe final answer is \\boxed{{{a}}}",
    "minerva": lambda r, body, a: f"{body}\n\nFinal Answer: The final answer is ${a}$. I hope it is correct.",
    "final_answer_is": lambda r, body, a: f"{body}\n\nThe final answer is ${a}$.",
    "markdown_answer": lambda r, body, a: f"{body}\n\n**Answer:** ${a}$",
    "markdown_plain": lambda r, body, a: f"{body}\n\n**Final Answer:** {a}",
    "answer_colon": lambda r, body, a: f"{body}\nAnswer: {a}",
    "the_answer_is": lambda r, body, a: f"{body} So the answer is {a}.",
    "the_answer_is_math": lambda r, body, a: f"{body} Hence, the answer is \\({a}\\).",
    "gsm8k": lambda r, body, a: f"{body}\n#### {a}",
    "inline_last": lambda r, body, a: f"{body}\nThus we get ${a}$.",
    "boxed_then_check": lambda r, body, a: (
        f"{body}\nSo the result is $\\boxed{{{a}}}$.\n\nCheck: substituting back, "
        f"${r.randint(2, 9)} \\cdot {r.randint(2, 9)} = {r.randint(10, 81)}$, which is consistent."
    ),
    "answer_then_check": lambda r, body, a: (
        f"{body}\nThe answer is ${a}$.\n\nLet me verify: {r.randint(2, 20)} + {r.randint(2, 20)} = {r.randint(4, 40)}. Good."
    ),
    "revised": lambda r, body, a: (
        f"{body}\nSo I get $\\boxed{{{r.randint(1, 99)}}}$.\n\nWait, I made an arithmetic error above. "
        f"Redoing the last step carefully, the correct value is $\\boxed{{{a}}}$."
    ),
    "think_tags": lambda r, body, a: f"{body}\n</think>\n\nThe answer is $\\boxed{{{a}}}$.",
    "last_number": lambda r, body, a: f"{body} In total we get {a}",
    "latex_display_end": lambda r, body, a: f"{body}\n\nPutting it together:\n$$x = {a}$$",
}

NO_ANSWER_TEMPLATES = {
    "no_answer": lambda r, body: f"{body}\nI'm not sure how to finish this problem.",
    "truncated": lambda r, body: body[: max(20, int(len(body) * r.uniform(0.4, 0.95)))],
    "refusal": lambda r, body: "I cannot determine the answer from the information given.",
    "empty_boxed": lambda r, body: f"{body}\n\nThe answer is $\\boxed{{}}$.",
}


def make_item(r):
    names, fns, weights = zip(*ANSWER_TYPES)
    i = r.choices(range(len(names)), weights=weights)[0]
    name, fn = names[i], fns[i]
    gold, eq, wrong = fn(r)
    body = cot_body(r)
    u = r.random()
    if u < 0.06:
        tname = r.choice(sorted(NO_ANSWER_TEMPLATES))
        pred = NO_ANSWER_TEMPLATES[tname](r, body)
        return {"gold": gold, "prediction": pred, "category": f"{name}/{tname}/none"}
    if u < 0.36:
        intent, ans = "same", eq[0]
    elif u < 0.62:
        intent, ans = "equiv", r.choice(eq)
    else:
        intent, ans = "wrong", r.choice(wrong)
    tname = r.choice(sorted(TEMPLATES))
    pred = TEMPLATES[tname](r, body, ans)
    return {"gold": gold, "prediction": pred, "category": f"{name}/{tname}/{intent}"}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    default_out = os.path.join(here, "..", "..", "crates", "autotune-verify", "tests", "data", "math", "corpus.jsonl")
    out = sys.argv[1] if len(sys.argv) > 1 else default_out
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1200
    r = random.Random(SEED)
    items = [make_item(r) for _ in range(n)]
    with open(out, "w", encoding="utf-8") as f:
        for it in items:
            f.write(json.dumps(it, ensure_ascii=False) + "\n")
    print(f"wrote {len(items)} items to {os.path.normpath(out)}")


if __name__ == "__main__":
    main()
