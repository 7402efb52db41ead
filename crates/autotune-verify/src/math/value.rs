//! Parsed answers and their equivalence, after math-verify's `sympy_expr_eq`.
//!
//! A parsed answer is a [`Node`]: numbers keep their kind (integer, rational, float, as
//! sympy would hold them, because math-verify's numeric rules depend on it), expressions keep
//! their shape, and sets, intervals, tuples, relations and matrices are nodes of their own.
//! Equivalence of expressions is decided numerically: exactly for rationals, by rounding to
//! 6 decimals when a float is involved (math-verify's `float_rounding`), and by evaluating at
//! fixed pseudo-random points when there are free symbols (where math-verify calls sympy's
//! `simplify`).

/// A number as sympy holds it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Num {
    /// An integer or a reduced fraction `n/d` (`d > 0`); an integer has `d == 1`.
    Rat(i128, i128),
    Float(f64),
}

fn gcd(a: i128, b: i128) -> i128 {
    let (mut a, mut b) = (a.unsigned_abs(), b.unsigned_abs());
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    a as i128
}

impl Num {
    pub fn int(n: i128) -> Num {
        Num::Rat(n, 1)
    }

    /// `n/d` reduced; `None` when `d == 0` or on overflow.
    pub fn rat(n: i128, d: i128) -> Option<Num> {
        if d == 0 {
            return None;
        }
        let g = gcd(n, d).max(1);
        let (mut n, mut d) = (n / g, d / g);
        if d < 0 {
            n = n.checked_neg()?;
            d = d.checked_neg()?;
        }
        Some(Num::Rat(n, d))
    }

    pub fn is_int(&self) -> bool {
        matches!(self, Num::Rat(_, 1))
    }

    pub fn is_float(&self) -> bool {
        matches!(self, Num::Float(_))
    }

    pub fn to_f64(self) -> f64 {
        match self {
            Num::Rat(n, d) => n as f64 / d as f64,
            Num::Float(x) => x,
        }
    }

    pub fn neg(self) -> Num {
        match self {
            Num::Rat(n, d) => n
                .checked_neg()
                .map_or(Num::Float(-(n as f64) / d as f64), |n| Num::Rat(n, d)),
            Num::Float(x) => Num::Float(-x),
        }
    }

    pub fn add(self, o: Num) -> Num {
        match (self, o) {
            (Num::Rat(a, b), Num::Rat(c, d)) => a
                .checked_mul(d)
                .and_then(|x| c.checked_mul(b).and_then(|y| x.checked_add(y)))
                .and_then(|n| b.checked_mul(d).and_then(|dd| Num::rat(n, dd)))
                .unwrap_or(Num::Float(self.to_f64() + o.to_f64())),
            _ => Num::Float(self.to_f64() + o.to_f64()),
        }
    }

    pub fn mul(self, o: Num) -> Num {
        match (self, o) {
            (Num::Rat(a, b), Num::Rat(c, d)) => a
                .checked_mul(c)
                .and_then(|n| b.checked_mul(d).and_then(|dd| Num::rat(n, dd)))
                .unwrap_or(Num::Float(self.to_f64() * o.to_f64())),
            _ => Num::Float(self.to_f64() * o.to_f64()),
        }
    }

    pub fn div(self, o: Num) -> Option<Num> {
        match (self, o) {
            (_, Num::Rat(0, _)) => None,
            (Num::Rat(a, b), Num::Rat(c, d)) => Some(
                a.checked_mul(d)
                    .and_then(|n| b.checked_mul(c).and_then(|dd| Num::rat(n, dd)))
                    .unwrap_or(Num::Float(self.to_f64() / o.to_f64())),
            ),
            _ => Some(Num::Float(self.to_f64() / o.to_f64())),
        }
    }

    /// Exact integer powers of rationals; anything else is a float.
    pub fn pow(self, e: Num) -> Option<Num> {
        if let (Num::Rat(n, d), Num::Rat(k, 1)) = (self, e) {
            if k.abs() <= 64 {
                let mut acc = Num::int(1);
                for _ in 0..k.abs() {
                    match acc.mul(Num::Rat(n, d)) {
                        Num::Rat(a, b) => acc = Num::Rat(a, b),
                        Num::Float(_) => return Some(Num::Float(self.to_f64().powf(e.to_f64()))),
                    }
                }
                return if k < 0 {
                    Num::int(1).div(acc)
                } else {
                    Some(acc)
                };
            }
        }
        let v = self.to_f64().powf(e.to_f64());
        v.is_finite().then_some(Num::Float(v))
    }

    pub fn exact_eq(self, o: Num) -> bool {
        match (self, o) {
            (Num::Rat(a, b), Num::Rat(c, d)) => a == c && b == d,
            (Num::Float(x), Num::Float(y)) => x == y,
            _ => false,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Func {
    Sqrt,
    Sin,
    Cos,
    Tan,
    Ln,
    Exp,
    Abs,
    Factorial,
    Floor,
    Ceil,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl RelOp {
    fn inverse(self) -> RelOp {
        match self {
            RelOp::Lt => RelOp::Gt,
            RelOp::Gt => RelOp::Lt,
            RelOp::Le => RelOp::Ge,
            RelOp::Ge => RelOp::Le,
            o => o,
        }
    }
}

/// A parsed answer.
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    Num(Num),
    /// A symbol; names are lowercased, as latex2sympy does.
    Sym(String),
    Pi,
    E,
    Inf,
    Add(Vec<Node>),
    Mul(Vec<Node>),
    Pow(Box<Node>, Box<Node>),
    /// `log(x, base)`.
    Log(Box<Node>, Box<Node>),
    Func(Func, Box<Node>),
    /// `x %`: sympy's `x * UnevaluatedExpr(1/100)`.
    Pct(Box<Node>),
    Rel(RelOp, Box<Node>, Box<Node>),
    /// Chained relations `a < b < c`.
    And(Vec<Node>),
    /// A finite set, elements in written order (latex2sympy's `_unsorted_args`).
    Set(Vec<Node>),
    Tuple(Vec<Node>),
    Interval {
        lo: Box<Node>,
        hi: Box<Node>,
        lopen: bool,
        ropen: bool,
    },
    Union(Vec<Node>),
    Matrix(Vec<Vec<Node>>),
    /// A named set: the reals, the empty set, ...
    NamedSet(&'static str),
}

impl Node {
    pub fn int(n: i128) -> Node {
        Node::Num(Num::int(n))
    }

    pub fn neg(self) -> Node {
        match self {
            Node::Num(n) => Node::Num(n.neg()),
            Node::Mul(mut v)
                if matches!(v.first(), Some(Node::Num(Num::Rat(-1, 1)))) && v.len() > 1 =>
            {
                v.remove(0);
                if v.len() == 1 {
                    v.pop().unwrap_or(Node::int(0))
                } else {
                    Node::Mul(v)
                }
            }
            o => Node::Mul(vec![Node::int(-1), o]),
        }
    }

    fn is_set_like(&self) -> bool {
        matches!(
            self,
            Node::Set(_) | Node::Interval { .. } | Node::Union(_) | Node::NamedSet(_)
        )
    }

    fn is_relation(&self) -> bool {
        match self {
            Node::Rel(..) => true,
            Node::And(v) => !v.is_empty() && v.iter().all(|r| matches!(r, Node::Rel(..))),
            _ => false,
        }
    }

    fn is_equation(&self) -> bool {
        match self {
            Node::Rel(RelOp::Eq, ..) => true,
            Node::And(v) => {
                !v.is_empty() && v.iter().all(|r| matches!(r, Node::Rel(RelOp::Eq, ..)))
            }
            _ => false,
        }
    }

    fn is_assignment(&self) -> bool {
        match self {
            Node::Rel(RelOp::Eq, l, _) => only_symbols(l),
            Node::And(v) => {
                self.is_equation()
                    && matches!(v.first(), Some(Node::Rel(_, l, _)) if only_symbols(l))
            }
            _ => false,
        }
    }

    fn first_rel(&self) -> &Node {
        match self {
            Node::And(v) if !v.is_empty() => &v[0],
            o => o,
        }
    }

    fn last_rel(&self) -> &Node {
        match self {
            Node::And(v) if !v.is_empty() => v[v.len() - 1].last_rel(),
            o => o,
        }
    }

    fn lhs(&self) -> Option<&Node> {
        match self {
            Node::Rel(_, l, _) => Some(l),
            _ => None,
        }
    }

    fn rhs(&self) -> Option<&Node> {
        match self {
            Node::Rel(_, _, r) => Some(r),
            _ => None,
        }
    }

    /// Is this an atomic sympy `Number` (or a percentage of one)? Returns the number and
    /// whether it is a percentage.
    fn atomic(&self) -> Option<(Num, bool)> {
        match self {
            Node::Num(n) => Some((*n, false)),
            Node::Pct(b) => match **b {
                Node::Num(n) => Some((n, true)),
                _ => None,
            },
            _ => None,
        }
    }

    fn free_symbols(&self, out: &mut Vec<String>) {
        match self {
            Node::Sym(s) if !out.contains(s) => out.push(s.clone()),
            Node::Sym(_) => {}
            Node::Add(v)
            | Node::Mul(v)
            | Node::And(v)
            | Node::Set(v)
            | Node::Tuple(v)
            | Node::Union(v) => v.iter().for_each(|n| n.free_symbols(out)),
            Node::Pow(a, b) | Node::Log(a, b) | Node::Rel(_, a, b) => {
                a.free_symbols(out);
                b.free_symbols(out);
            }
            Node::Func(_, a) | Node::Pct(a) => a.free_symbols(out),
            Node::Interval { lo, hi, .. } => {
                lo.free_symbols(out);
                hi.free_symbols(out);
            }
            Node::Matrix(rows) => rows.iter().flatten().for_each(|n| n.free_symbols(out)),
            _ => {}
        }
    }
}

fn only_symbols(n: &Node) -> bool {
    match n {
        Node::Sym(_) => true,
        Node::Mul(v) | Node::Add(v) => !v.is_empty() && v.iter().all(only_symbols),
        Node::Pow(b, e) => **e == Node::int(-1) && only_symbols(b),
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------------

/// Exact value when the node is rational arithmetic on rationals (sympy's `doit()` result
/// is then a `Rational`); floats make it a float.
pub fn exact(n: &Node) -> Option<Num> {
    match n {
        Node::Num(x) => Some(*x),
        Node::Add(v) => v
            .iter()
            .try_fold(Num::int(0), |acc, t| Some(acc.add(exact(t)?))),
        Node::Mul(v) => v
            .iter()
            .try_fold(Num::int(1), |acc, t| Some(acc.mul(exact(t)?))),
        Node::Pow(b, e) => {
            let (b, e) = (exact(b)?, exact(e)?);
            match (b, e) {
                (Num::Rat(..), Num::Rat(_, 1)) => b.pow(e),
                _ if b.is_float() || e.is_float() => b.pow(e),
                _ => None,
            }
        }
        Node::Pct(b) => exact(b)?.div(Num::int(100)),
        Node::Func(Func::Factorial, a) => match exact(a)? {
            Num::Rat(k, 1) if (0..=30).contains(&k) => {
                Some(Num::int((1..=k).product::<i128>().max(1)))
            }
            _ => None,
        },
        Node::Func(Func::Abs, a) => {
            let x = exact(a)?;
            Some(if x.to_f64() < 0.0 { x.neg() } else { x })
        }
        _ => None,
    }
}

/// A symbol's value at evaluation point `k`: deterministic, irrational-looking, distinct per name.
fn sym_value(name: &str, k: usize) -> f64 {
    let mut h: u64 = 0xcbf29ce484222325 ^ (k as u64).wrapping_mul(0x9e3779b97f4a7c15);
    for b in name.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h ^= h >> 29;
    0.37 + (h % 1_000_003) as f64 / 1_000_003.0 * 1.9 + k as f64 * 0.173
}

/// Numeric value at evaluation point `k` (`None`: not a number, or undefined there).
pub fn eval(n: &Node, k: usize) -> Option<f64> {
    let v = match n {
        Node::Num(x) => x.to_f64(),
        Node::Sym(s) => sym_value(s, k),
        Node::Pi => std::f64::consts::PI,
        Node::E => std::f64::consts::E,
        Node::Inf => f64::INFINITY,
        Node::Add(v) => v.iter().try_fold(0.0, |a, t| Some(a + eval(t, k)?))?,
        Node::Mul(v) => v.iter().try_fold(1.0, |a, t| Some(a * eval(t, k)?))?,
        Node::Pow(b, e) => {
            if let (Some(x), Some(y)) = (exact(b), exact(e)) {
                if let Some(p) = x.pow(y) {
                    return Some(p.to_f64());
                }
            }
            eval(b, k)?.powf(eval(e, k)?)
        }
        Node::Log(x, b) => eval(x, k)?.ln() / eval(b, k)?.ln(),
        Node::Pct(b) => eval(b, k)? / 100.0,
        Node::Func(f, a) => {
            let x = eval(a, k)?;
            match f {
                Func::Sqrt => x.sqrt(),
                Func::Sin => x.sin(),
                Func::Cos => x.cos(),
                Func::Tan => x.tan(),
                Func::Ln => x.ln(),
                Func::Exp => x.exp(),
                Func::Abs => x.abs(),
                Func::Floor => x.floor(),
                Func::Ceil => x.ceil(),
                Func::Factorial => {
                    if !(0.0..=170.0).contains(&x) || x.fract() != 0.0 {
                        return None;
                    }
                    (1..=x as u64).map(|i| i as f64).product()
                }
            }
        }
        _ => return None,
    };
    (!v.is_nan()).then_some(v)
}

fn has_float(n: &Node) -> bool {
    match n {
        Node::Num(Num::Float(_)) => true,
        Node::Add(v) | Node::Mul(v) => v.iter().any(has_float),
        Node::Pow(a, b) | Node::Log(a, b) => has_float(a) || has_float(b),
        Node::Func(_, a) | Node::Pct(a) => has_float(a),
        _ => false,
    }
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    if a == b {
        return true;
    }
    if !a.is_finite() || !b.is_finite() {
        return false;
    }
    (a - b).abs() <= rel * a.abs().max(b.abs()).max(1e-300)
}

/// sympy's `Float.round(6)` then `==`.
fn round6_eq(a: f64, b: f64) -> bool {
    if a.is_infinite() || b.is_infinite() {
        return a == b;
    }
    let r = |x: f64| (x * 1e6).round();
    let (ra, rb) = (r(a), r(b));
    if ra == rb {
        return true;
    }
    // Ties at the 7th decimal depend on the binary value; accept when both round the same way
    // from their decimal representation within one ulp.
    (ra - rb).abs() <= 1.0 && (a - b).abs() < 1e-12 * a.abs().max(1.0)
}

/// math-verify's `sympy_numeric_eq` followed by `sympy_symbolic_eq`, for scalar expressions.
fn scalar_eq(g: &Node, p: &Node) -> bool {
    let (ga, pa) = (g.atomic(), p.atomic());
    if ga.is_some() || pa.is_some() {
        let g_float = ga.is_some_and(|(n, _)| n.is_float());
        let p_float = pa.is_some_and(|(n, _)| n.is_float());
        if g_float || p_float {
            if let (Some(a), Some(b)) = (eval(g, 0), eval(p, 0)) {
                if round6_eq(a, b) {
                    return true;
                }
            }
        } else if let (Some((a, _)), Some((b, _))) = (ga, pa) {
            if a.is_int() && b.is_int() {
                // 9% == 9: integers compare without the percent.
                return a.exact_eq(b) || symbolic_eq(g, p);
            }
            if let (Some(x), Some(y)) = (exact(g), exact(p)) {
                if x.exact_eq(y) {
                    return true;
                }
            }
        } else if let (Some(x), Some(y)) = (exact(g), exact(p)) {
            if !x.is_float() && !y.is_float() && x.exact_eq(y) {
                return true;
            }
        }
    }
    symbolic_eq(g, p)
}

/// Is `g - p` zero? Exactly for rationals, to float precision for constants, and at several
/// points for expressions with symbols.
fn symbolic_eq(g: &Node, p: &Node) -> bool {
    let mut syms = Vec::new();
    g.free_symbols(&mut syms);
    p.free_symbols(&mut syms);
    if syms.is_empty() {
        if let (Some(x), Some(y)) = (exact(g), exact(p)) {
            if !x.is_float() && !y.is_float() {
                return x.exact_eq(y);
            }
        }
        // With floats, sympy's simplify leaves the float rounding error of the difference
        // (8.8 * 10^5 - 880000 is 1.2e-10, not zero): only an exact float match is zero.
        let rel = if has_float(g) || has_float(p) {
            0.0
        } else {
            1e-12
        };
        return match (eval(g, 0), eval(p, 0)) {
            (Some(a), Some(b)) => close(a, b, rel),
            _ => false,
        };
    }
    let mut defined = 0;
    for k in 0..4 {
        match (eval(g, k), eval(p, k)) {
            (Some(a), Some(b)) if a.is_finite() && b.is_finite() => {
                if !close(a, b, 1e-9) {
                    return false;
                }
                defined += 1;
            }
            (None, None) => {}
            (Some(a), Some(b)) if a.is_infinite() || b.is_infinite() => {
                if a != b {
                    return false;
                }
            }
            _ => return false,
        }
    }
    defined >= 2
}

/// Is `a / b` a nonzero constant (the same equation or inequality written differently)?
/// Returns the sign of the constant.
fn proportional(a: &Node, b: &Node) -> Option<f64> {
    let mut syms = Vec::new();
    a.free_symbols(&mut syms);
    let mut sb = Vec::new();
    b.free_symbols(&mut sb);
    syms.sort();
    sb.sort();
    if syms != sb || syms.is_empty() {
        return None;
    }
    let mut ratio = None;
    for k in 0..4 {
        let (x, y) = (eval(a, k)?, eval(b, k)?);
        if y == 0.0 || !x.is_finite() || !y.is_finite() {
            return None;
        }
        let r = x / y;
        match ratio {
            None => ratio = Some(r),
            Some(r0) if close(r0, r, 1e-9) => {}
            _ => return None,
        }
    }
    ratio.filter(|r| *r != 0.0).map(f64::signum)
}

fn diff(a: &Node, b: &Node) -> Node {
    Node::Add(vec![a.clone(), b.clone().neg()])
}

// ---------------------------------------------------------------------------------------
// Equivalence
// ---------------------------------------------------------------------------------------

/// math-verify's `sympy_expr_eq(gold, pred)` (strict mode, no set/relation comparison
/// unless the prediction is a set).
pub fn expr_eq(gold: &Node, pred: &Node) -> bool {
    let mut g = gold.clone();
    let mut p = pred.clone();
    let (ga, pa) = (g.is_assignment(), p.is_assignment());
    let (ge, pe) = (g.is_equation(), p.is_equation());
    if ga {
        if let (Some(l), Some(r)) = (g.first_rel().lhs(), g.last_rel().rhs()) {
            g = Node::Rel(RelOp::Eq, Box::new(l.clone()), Box::new(r.clone()));
        }
    }
    if pa {
        if let (Some(l), Some(r)) = (p.first_rel().lhs(), p.last_rel().rhs()) {
            p = Node::Rel(RelOp::Eq, Box::new(l.clone()), Box::new(r.clone()));
        }
    }
    if pe && !ge {
        if let Some(r) = p.last_rel().rhs() {
            p = r.clone();
        }
    } else if ga && !pe {
        if let Some(r) = g.last_rel().rhs() {
            g = r.clone();
        }
    }
    if g.is_relation() && p.is_set_like() {
        if let Some(s) = relation_as_set(&g) {
            g = s;
        }
    }
    if structural_eq(&g, &p) {
        return true;
    }
    if g.is_relation() && p.is_relation() {
        return compare_relational(&g, &p);
    }
    if g.is_set_like()
        || p.is_set_like()
        || matches!(g, Node::Tuple(_))
        || matches!(p, Node::Tuple(_))
    {
        return compare_sets(&g, &p);
    }
    if matches!(g, Node::Sym(_)) || matches!(p, Node::Sym(_)) {
        return compare_symbols(&g, &p);
    }
    if let (Node::Matrix(a), Node::Matrix(b)) = (&g, &p) {
        return a.len() == b.len()
            && a.iter().zip(b).all(|(ra, rb)| {
                ra.len() == rb.len() && ra.iter().zip(rb).all(|(x, y)| expr_eq(x, y))
            });
    }
    if matches!(g, Node::Matrix(_)) || matches!(p, Node::Matrix(_)) {
        return false;
    }
    if g.is_relation() || p.is_relation() {
        return false;
    }
    scalar_eq(&g, &p)
}

/// sympy's `==`: same tree, with finite sets compared as sets.
fn structural_eq(a: &Node, b: &Node) -> bool {
    match (a, b) {
        (Node::Set(x), Node::Set(y)) => {
            x.iter().all(|e| y.iter().any(|f| structural_eq(e, f)))
                && y.iter().all(|e| x.iter().any(|f| structural_eq(e, f)))
        }
        (Node::Num(x), Node::Num(y)) => x.exact_eq(*y),
        _ => a == b,
    }
}

fn relation_as_set(g: &Node) -> Option<Node> {
    // x > a, a < x, ... with one symbol on one side and a constant on the other.
    let one = |r: &Node| -> Option<(bool, bool, Node, bool)> {
        // returns (lower bound?, open?, bound, is_eq)
        let Node::Rel(op, l, rr) = r else { return None };
        let (op, c) = match (&**l, &**rr) {
            (Node::Sym(_), c) if exact_or_const(c) => (*op, c.clone()),
            (c, Node::Sym(_)) if exact_or_const(c) => (op.inverse(), c.clone()),
            _ => return None,
        };
        match op {
            RelOp::Gt => Some((true, true, c, false)),
            RelOp::Ge => Some((true, false, c, false)),
            RelOp::Lt => Some((false, true, c, false)),
            RelOp::Le => Some((false, false, c, false)),
            RelOp::Eq => Some((true, false, c, true)),
            RelOp::Ne => None,
        }
    };
    let ninf = || Node::Inf.neg();
    match g {
        Node::Rel(..) => {
            let (lower, open, c, is_eq) = one(g)?;
            if is_eq {
                return Some(Node::Set(vec![c]));
            }
            Some(if lower {
                Node::Interval {
                    lo: Box::new(c),
                    hi: Box::new(Node::Inf),
                    lopen: open,
                    ropen: true,
                }
            } else {
                Node::Interval {
                    lo: Box::new(ninf()),
                    hi: Box::new(c),
                    lopen: true,
                    ropen: open,
                }
            })
        }
        Node::And(v) if v.len() == 2 => {
            let (l1, o1, c1, e1) = one(&v[0])?;
            let (l2, o2, c2, e2) = one(&v[1])?;
            if e1 || e2 || l1 == l2 {
                return None;
            }
            let ((lo, lopen), (hi, ropen)) = if l1 {
                ((c1, o1), (c2, o2))
            } else {
                ((c2, o2), (c1, o1))
            };
            Some(Node::Interval {
                lo: Box::new(lo),
                hi: Box::new(hi),
                lopen,
                ropen,
            })
        }
        _ => None,
    }
}

fn exact_or_const(n: &Node) -> bool {
    let mut s = Vec::new();
    n.free_symbols(&mut s);
    s.is_empty() && eval(n, 0).is_some()
}

fn compare_relational(g: &Node, p: &Node) -> bool {
    if let (Node::And(a), Node::And(b)) = (g, p) {
        return a.len() == b.len() && a.iter().zip(b).all(|(x, y)| compare_relational(x, y));
    }
    let (Node::Rel(go, gl, gr), Node::Rel(po, pl, pr)) = (g, p) else {
        return false;
    };
    let dg = diff(gl, gr);
    if go == po && expr_eq(&dg, &diff(pl, pr)) {
        return true;
    }
    if go.inverse() == *po && expr_eq(&dg, &diff(pr, pl)) {
        return true;
    }
    // sympy's solve-and-compare: the same solutions. For the equations and inequalities seen
    // in answers this is: one side minus the other is a constant multiple of the other's.
    match proportional(&dg, &diff(pl, pr)) {
        Some(s) => match (go, po) {
            (RelOp::Eq, RelOp::Eq) => true,
            _ if go == po => s > 0.0,
            _ if go.inverse() == *po => s < 0.0,
            _ => false,
        },
        None => false,
    }
}

fn sort_key(n: &Node) -> (u8, f64, String) {
    let n = match n {
        Node::Rel(RelOp::Eq, l, r) if only_symbols(l) => r.as_ref(),
        o => o,
    };
    match eval(n, 0) {
        Some(v) if !n.is_relation() => {
            let mut s = Vec::new();
            n.free_symbols(&mut s);
            if s.is_empty() {
                (0, v, String::new())
            } else {
                (1, 0.0, format!("{n:?}"))
            }
        }
        _ => (1, 0.0, format!("{n:?}")),
    }
}

fn sorted(v: &[Node]) -> Vec<Node> {
    let mut v: Vec<Node> = v.to_vec();
    v.sort_by(|a, b| {
        let (ka, kb) = (sort_key(a), sort_key(b));
        ka.0.cmp(&kb.0)
            .then(ka.1.partial_cmp(&kb.1).unwrap_or(std::cmp::Ordering::Equal))
            .then(ka.2.cmp(&kb.2))
    });
    v
}

/// sympy's FiniteSet drops duplicates.
fn dedup(v: &[Node]) -> Vec<Node> {
    let mut out: Vec<Node> = Vec::new();
    for e in v {
        let dup = out.iter().any(|o| match (exact(o), exact(e)) {
            (Some(a), Some(b)) => a.exact_eq(b),
            _ => o == e,
        });
        if !dup {
            out.push(e.clone());
        }
    }
    out
}

fn deep_compare(g: &Node, p: &Node) -> bool {
    let (ga, pa) = match (g, p) {
        (Node::Set(a), Node::Set(b)) => (sorted(&dedup(a)), sorted(&dedup(b))),
        (Node::Set(a), Node::Tuple(b)) => (sorted(&dedup(a)), sorted(b)),
        (Node::Tuple(a), Node::Set(b)) => (a.clone(), dedup(b)),
        (Node::Tuple(a), Node::Tuple(b)) => (a.clone(), b.clone()),
        _ => return false,
    };
    ga.len() == pa.len() && ga.iter().zip(&pa).all(|(x, y)| expr_eq(x, y))
}

fn compare_sets(g: &Node, p: &Node) -> bool {
    let wrap = |n: &Node| -> Node {
        if n.is_set_like() || matches!(n, Node::Tuple(_)) {
            n.clone()
        } else {
            Node::Set(vec![n.clone()])
        }
    };
    let (a, b) = (wrap(g), wrap(p));
    if let (
        Node::Interval {
            lo: l1,
            hi: h1,
            lopen: lo1,
            ropen: ro1,
        },
        Node::Interval {
            lo: l2,
            hi: h2,
            lopen: lo2,
            ropen: ro2,
        },
    ) = (&a, &b)
    {
        return lo1 == lo2 && ro1 == ro2 && expr_eq(l1, l2) && expr_eq(h1, h2);
    }
    if structural_eq(&a, &b) {
        return true;
    }
    if let (Node::Set(x), Node::Set(y)) = (&a, &b) {
        // symmetric difference empty, for numbers
        let xs: Option<Vec<Num>> = x.iter().map(exact).collect();
        let ys: Option<Vec<Num>> = y.iter().map(exact).collect();
        if let (Some(xs), Some(ys)) = (xs, ys) {
            let all_in =
                |p: &[Num], q: &[Num]| p.iter().all(|u| q.iter().any(|v| numeq_exactish(*u, *v)));
            if all_in(&xs, &ys) && all_in(&ys, &xs) {
                return true;
            }
        }
    }
    if let (Node::Union(x), Node::Union(y)) = (&a, &b) {
        return x.len() == y.len() && x.iter().zip(y).all(|(u, v)| compare_sets(u, v));
    }
    if matches!(a, Node::Set(_) | Node::Tuple(_)) && matches!(b, Node::Set(_) | Node::Tuple(_)) {
        return deep_compare(&a, &b);
    }
    let len2 = |n: &Node| matches!(n, Node::Set(v) | Node::Tuple(v) if v.len() == 2);
    if let Node::Interval {
        lo,
        hi,
        lopen: true,
        ropen: true,
    } = &a
    {
        if len2(&b) {
            return deep_compare(&Node::Tuple(vec![(**lo).clone(), (**hi).clone()]), &b);
        }
    }
    if let Node::Interval {
        lo,
        hi,
        lopen: true,
        ropen: true,
    } = &b
    {
        if len2(&a) {
            return deep_compare(&a, &Node::Tuple(vec![(**lo).clone(), (**hi).clone()]));
        }
    }
    false
}

fn numeq_exactish(a: Num, b: Num) -> bool {
    match (a, b) {
        (Num::Rat(..), Num::Rat(..)) => a.exact_eq(b),
        _ => a.to_f64() == b.to_f64() && a.is_float() == b.is_float(),
    }
}

fn symbol_word(n: &Node) -> Option<String> {
    match n {
        Node::Sym(s) => Some(s.clone()),
        Node::E => Some("e".into()),
        _ => None,
    }
}

fn compare_symbols(g: &Node, p: &Node) -> bool {
    if let (Node::Sym(s), Node::E) | (Node::E, Node::Sym(s)) = (g, p) {
        if s == "e" {
            return true;
        }
    }
    let concat = |n: &Node| -> Option<String> {
        match n {
            Node::Mul(v) => v
                .iter()
                .map(symbol_word)
                .collect::<Option<Vec<_>>>()
                .map(|w| w.concat()),
            _ => None,
        }
    };
    if let (Node::Sym(s), Some(c)) = (g, concat(p)) {
        return s.to_lowercase() == c.to_lowercase();
    }
    if let (Some(c), Node::Sym(s)) = (concat(g), p) {
        return s.to_lowercase() == c.to_lowercase();
    }
    if let (Node::Sym(a), Node::Sym(b)) = (g, p) {
        return a == b;
    }
    false
}
