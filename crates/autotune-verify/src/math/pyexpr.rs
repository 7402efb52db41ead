//! sympy's `parse_expr(s, evaluate=False)` for the plain expressions math-verify extracts
//! (digits, `.`, spaces, `+ - * / ** ( )`): Python syntax, no implicit products.

use super::value::{Node, Num};

#[derive(Clone, Debug, PartialEq)]
enum T {
    Num(String),
    Op(&'static str),
}

fn lex(s: &str) -> Option<Vec<T>> {
    let c: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < c.len() {
        let ch = c[i];
        if ch.is_whitespace() {
            i += 1;
        } else if ch.is_ascii_digit() || ch == '.' {
            let st = i;
            while i < c.len() && (c[i].is_ascii_digit() || c[i] == '.') {
                i += 1;
            }
            let t: String = c[st..i].iter().collect();
            if t.matches('.').count() > 1 || t == "." {
                return None;
            }
            // Python forbids leading zeros in integers ("007")
            if !t.contains('.') && t.len() > 1 && t.starts_with('0') && t.chars().any(|d| d != '0')
            {
                return None;
            }
            out.push(T::Num(t));
        } else if ch == '*' && c.get(i + 1) == Some(&'*') {
            out.push(T::Op("**"));
            i += 2;
        } else {
            out.push(T::Op(match ch {
                '+' => "+",
                '-' => "-",
                '*' => "*",
                '/' => "/",
                '(' => "(",
                ')' => ")",
                _ => return None,
            }));
            i += 1;
        }
    }
    Some(out)
}

/// Deepest nesting parsed (a parenthesis counts twice: its sum and its operand), far above
/// any real answer and far below what a thread's stack holds.
const MAX_DEPTH: usize = 120;

struct P {
    t: Vec<T>,
    i: usize,
    depth: usize,
}

impl P {
    fn eat(&mut self, op: &str) -> bool {
        if matches!(self.t.get(self.i), Some(T::Op(o)) if *o == op) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn sum(&mut self) -> Option<Node> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return None;
        }
        let mut terms = vec![self.product()?];
        loop {
            if self.eat("+") {
                terms.push(self.product()?);
            } else if self.eat("-") {
                terms.push(self.product()?.neg());
            } else {
                break;
            }
        }
        self.depth -= 1;
        Some(if terms.len() == 1 {
            terms.pop()?
        } else {
            Node::Add(terms)
        })
    }
    fn product(&mut self) -> Option<Node> {
        let mut f = vec![self.unary()?];
        loop {
            if self.eat("*") {
                f.push(self.unary()?);
            } else if self.eat("/") {
                let d = self.unary()?;
                f.push(Node::Pow(Box::new(d), Box::new(Node::int(-1))));
            } else {
                break;
            }
        }
        Some(if f.len() == 1 { f.pop()? } else { Node::Mul(f) })
    }
    /// Every path that nests (`-x`, `+x`, `a ** b`, `(x)`) goes through here, so the depth
    /// bounds the recursion whatever the input: `+` chains and `**` towers used to recurse
    /// without counting and overflowed the stack of a rayon worker (2 MiB) on 20 000
    /// characters.
    fn unary(&mut self) -> Option<Node> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return None;
        }
        let r = if self.eat("-") {
            self.unary().map(Node::neg)
        } else if self.eat("+") {
            self.unary()
        } else {
            self.power()
        };
        self.depth -= 1;
        r
    }
    fn power(&mut self) -> Option<Node> {
        let base = self.atom()?;
        if self.eat("**") {
            let e = self.unary()?;
            return Some(Node::Pow(Box::new(base), Box::new(e)));
        }
        Some(base)
    }
    fn atom(&mut self) -> Option<Node> {
        match self.t.get(self.i).cloned()? {
            T::Num(s) => {
                self.i += 1;
                if s.contains('.') {
                    s.parse::<f64>().ok().map(|x| Node::Num(Num::Float(x)))
                } else {
                    match s.parse::<i128>() {
                        Ok(n) => Some(Node::int(n)),
                        Err(_) => s.parse::<f64>().ok().map(|x| Node::Num(Num::Float(x))),
                    }
                }
            }
            T::Op("(") => {
                self.i += 1;
                let e = self.sum()?;
                self.eat(")").then_some(e)
            }
            _ => None,
        }
    }
}

/// Parses a plain expression; `None` where Python would raise.
pub fn parse_py(s: &str) -> Option<Node> {
    let t = lex(s)?;
    if t.is_empty() {
        return None;
    }
    let mut p = P { t, i: 0, depth: 0 };
    let n = p.sum()?;
    (p.i == p.t.len()).then_some(n)
}
