//! A LaTeX answer parser after latex2sympy2_extended's grammar, for normalized LaTeX (see
//! `normalize.rs`). It covers what answers are written with: numbers, `+ - * / ^`, implicit
//! products, `\frac`, `\sqrt`, `\pi`, `e`, `\infty`, `\text{}`, `%`, degrees, functions, sets,
//! intervals, tuples, relations and matrices. It never panics: anything else is an error.

use super::value::{Func, Node, Num, RelOp};

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Num(String),
    Letter(char),
    /// `\name`, or `\{` `\}` `\%` `\|` as the symbol itself.
    Cmd(String),
    Ch(char),
}

const MAX_DEPTH: usize = 60;

fn tokenize(s: &str) -> Result<Vec<Tok>, String> {
    let c: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < c.len() {
        let ch = c[i];
        if ch.is_whitespace() {
            i += 1;
        } else if ch.is_ascii_digit()
            || (ch == '.' && c.get(i + 1).is_some_and(|d| d.is_ascii_digit()))
        {
            let st = i;
            while i < c.len() && c[i].is_ascii_digit() {
                i += 1;
            }
            if i < c.len() && c[i] == '.' && c.get(i + 1).is_some_and(|d| d.is_ascii_digit()) {
                i += 1;
                while i < c.len() && c[i].is_ascii_digit() {
                    i += 1;
                }
            }
            out.push(Tok::Num(c[st..i].iter().collect()));
        } else if ch.is_ascii_alphabetic() {
            out.push(Tok::Letter(ch));
            i += 1;
        } else if ch == '\\' {
            i += 1;
            if i >= c.len() {
                return Err("trailing backslash".into());
            }
            if c[i].is_ascii_alphabetic() {
                let st = i;
                while i < c.len() && c[i].is_ascii_alphabetic() {
                    i += 1;
                }
                let name: String = c[st..i].iter().collect();
                match name.as_str() {
                    "quad" | "qquad" | "displaystyle" | "left" | "right" | "mleft" | "mright"
                    | "limits" => {}
                    _ => out.push(Tok::Cmd(name)),
                }
            } else {
                match c[i] {
                    ',' | ';' | ' ' | '!' | ':' | '>' => {}
                    '\\' => out.push(Tok::Cmd("\\".into())),
                    o => out.push(Tok::Cmd(o.to_string())),
                }
                i += 1;
            }
        } else if "+-*/^_()[]{},;=<>!|%&':".contains(ch) {
            out.push(Tok::Ch(ch));
            i += 1;
        } else if ch == '×' || ch == '·' {
            out.push(Tok::Cmd("times".into()));
            i += 1;
        } else if ch == '÷' {
            out.push(Tok::Cmd("div".into()));
            i += 1;
        } else if ch == '≤' || ch == '≥' || ch == '≠' || ch == 'π' || ch == '√' || ch == '∞'
        {
            out.push(Tok::Cmd(
                match ch {
                    '≤' => "le",
                    '≥' => "ge",
                    '≠' => "ne",
                    'π' => "pi",
                    '√' => "sqrt",
                    _ => "infty",
                }
                .into(),
            ));
            i += 1;
        } else {
            return Err(format!("unexpected character {ch:?}"));
        }
    }
    Ok(out)
}

struct P<'a> {
    t: &'a [Tok],
    i: usize,
    depth: usize,
}

type R<T> = Result<T, String>;

fn num_node(s: &str) -> R<Node> {
    if s.contains('.') {
        s.parse::<f64>()
            .map(|x| Node::Num(Num::Float(x)))
            .map_err(|e| e.to_string())
    } else {
        let t = s.trim_start_matches('0');
        if t.is_empty() {
            return Ok(Node::int(0));
        }
        match t.parse::<i128>() {
            Ok(n) => Ok(Node::int(n)),
            Err(_) => s
                .parse::<f64>()
                .map(|x| Node::Num(Num::Float(x)))
                .map_err(|e| e.to_string()),
        }
    }
}

fn rel_of(t: &Tok) -> Option<RelOp> {
    match t {
        Tok::Ch('=') => Some(RelOp::Eq),
        Tok::Ch('<') => Some(RelOp::Lt),
        Tok::Ch('>') => Some(RelOp::Gt),
        Tok::Cmd(c) => match c.as_str() {
            "le" | "leq" | "leqslant" => Some(RelOp::Le),
            "ge" | "geq" | "geqslant" => Some(RelOp::Ge),
            "lt" => Some(RelOp::Lt),
            "gt" => Some(RelOp::Gt),
            "ne" | "neq" => Some(RelOp::Ne),
            "in" => Some(RelOp::Eq),
            _ => None,
        },
        _ => None,
    }
}

impl<'a> P<'a> {
    fn peek(&self) -> Option<&Tok> {
        self.t.get(self.i)
    }
    fn peek_at(&self, k: usize) -> Option<&Tok> {
        self.t.get(self.i + k)
    }
    fn eat_ch(&mut self, c: char) -> bool {
        if self.peek() == Some(&Tok::Ch(c)) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn eat_cmd(&mut self, c: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Cmd(x)) if x == c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn expect_ch(&mut self, c: char) -> R<()> {
        if self.eat_ch(c) {
            Ok(())
        } else {
            Err(format!("expected {c:?} at token {}", self.i))
        }
    }
    fn enter(&mut self) -> R<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            Err("nesting too deep".into())
        } else {
            Ok(())
        }
    }

    /// Top level: comma/semicolon separated elements.
    fn elements(&mut self, closers: &[Tok]) -> R<Vec<Node>> {
        let mut v = Vec::new();
        loop {
            if self.peek().is_none_or(|t| closers.contains(t)) && !v.is_empty() {
                return Err("empty element".into());
            }
            v.extend(self.element()?);
            if self.eat_ch(',') || self.eat_ch(';') {
                continue;
            }
            return Ok(v);
        }
    }

    /// An element: a relation, or `a \pm b` (two elements).
    fn element(&mut self) -> R<Vec<Node>> {
        if self.eat_cmd("pm") {
            let e = self.expr()?;
            return Ok(vec![e.clone().neg(), e]);
        }
        let first = self.expr()?;
        if self.eat_cmd("pm") {
            let r = self.expr()?;
            return Ok(vec![
                Node::Add(vec![first.clone(), r.clone()]),
                Node::Add(vec![first, r.neg()]),
            ]);
        }
        let mut rels: Vec<Node> = Vec::new();
        let mut lhs = first;
        while let Some(op) = self.peek().and_then(rel_of) {
            let approx = false;
            self.i += 1;
            let rhs = self.expr()?;
            rels.push(Node::Rel(op, Box::new(lhs), Box::new(rhs.clone())));
            lhs = rhs;
            let _ = approx;
        }
        if self.eat_cmd("approx") {
            let rhs = self.expr()?;
            if rels.is_empty() {
                let sym_only = matches!(lhs, Node::Sym(_));
                return Ok(vec![if sym_only { rhs } else { lhs }]);
            }
            return Err("approx in a chain".into());
        }
        Ok(vec![match rels.len() {
            0 => lhs,
            1 => rels.pop().unwrap_or(Node::int(0)),
            _ => Node::And(rels),
        }])
    }

    fn expr(&mut self) -> R<Node> {
        self.enter()?;
        let r = self.set_expr();
        self.depth -= 1;
        r
    }

    fn set_expr(&mut self) -> R<Node> {
        let first = self.additive()?;
        if matches!(self.peek(), Some(Tok::Cmd(c)) if c == "cup") {
            let mut parts = vec![first];
            while self.eat_cmd("cup") {
                parts.push(self.additive()?);
            }
            return Ok(Node::Union(parts));
        }
        Ok(first)
    }

    fn additive(&mut self) -> R<Node> {
        let mut terms = vec![self.multiplicative()?];
        loop {
            if self.eat_ch('+') {
                terms.push(self.multiplicative()?);
            } else if self.eat_ch('-') {
                terms.push(self.multiplicative()?.neg());
            } else {
                break;
            }
        }
        Ok(if terms.len() == 1 {
            terms.pop().unwrap_or(Node::int(0))
        } else {
            Node::Add(terms)
        })
    }

    fn multiplicative(&mut self) -> R<Node> {
        let mut acc = self.unary()?;
        loop {
            if self.eat_ch('*')
                || self.eat_cmd("cdot")
                || self.eat_cmd("times")
                || self.eat_cmd("ast")
            {
                let r = self.unary()?;
                acc = mul(acc, r);
            } else if self.eat_ch('/') || self.eat_cmd("div") {
                let r = self.unary()?;
                acc = divide(acc, r)?;
            } else if self.starts_atom() {
                let r = self.postfix()?;
                acc = implicit_mul(acc, r);
            } else {
                return Ok(acc);
            }
        }
    }

    fn starts_atom(&self) -> bool {
        match self.peek() {
            Some(Tok::Num(_)) | Some(Tok::Letter(_)) => true,
            Some(Tok::Ch(c)) => matches!(c, '(' | '{' | '['),
            Some(Tok::Cmd(c)) => !matches!(
                c.as_str(),
                "cdot"
                    | "times"
                    | "div"
                    | "le"
                    | "leq"
                    | "ge"
                    | "geq"
                    | "lt"
                    | "gt"
                    | "ne"
                    | "neq"
                    | "in"
                    | "approx"
                    | "pm"
                    | "mp"
                    | "cup"
                    | "cap"
                    | "}"
                    | "%"
                    | "\\"
                    | "end"
                    | "circ"
                    | "ast"
                    | "leqslant"
                    | "geqslant"
                    | "setminus"
            ),
            None => false,
        }
    }

    fn unary(&mut self) -> R<Node> {
        if self.eat_ch('-') {
            self.enter()?;
            let r = self.unary();
            self.depth -= 1;
            return Ok(r?.neg());
        }
        if self.eat_ch('+') {
            self.enter()?;
            let r = self.unary();
            self.depth -= 1;
            return r;
        }
        let first = self.postfix()?;
        Ok(first)
    }

    fn postfix(&mut self) -> R<Node> {
        let depth = self.depth;
        self.enter()?;
        let r = self.postfix_inner();
        self.depth = depth;
        r
    }

    /// An atom and its postfix operators. Each `^`, `!` or `%` wraps the node so far in one
    /// more level, so each counts as one level of nesting: a long `2^2^2^...` or `x!!!...`
    /// used to build a tree thousands of levels deep without recursing here, and then
    /// overflowed the stack in the recursive comparison (and drop) of that tree.
    fn postfix_inner(&mut self) -> R<Node> {
        let mut base = self.atom()?;
        loop {
            if matches!(self.peek(), Some(Tok::Ch('^' | '!' | '%')))
                || self.peek() == Some(&Tok::Cmd("%".into()))
            {
                self.enter()?;
            }
            if self.eat_ch('^') {
                // degrees: ^\circ, ^{\circ}
                if self.eat_cmd("circ") {
                    continue;
                }
                if self.peek() == Some(&Tok::Ch('{'))
                    && self.peek_at(1) == Some(&Tok::Cmd("circ".into()))
                    && self.peek_at(2) == Some(&Tok::Ch('}'))
                {
                    self.i += 3;
                    continue;
                }
                let e = self.script_arg()?;
                base = Node::Pow(Box::new(base), Box::new(e));
            } else if self.eat_ch('!') {
                base = Node::Func(Func::Factorial, Box::new(base));
            } else if self.peek() == Some(&Tok::Ch('%'))
                || self.peek() == Some(&Tok::Cmd("%".into()))
            {
                if !matches!(base, Node::Num(_)) {
                    return Err("percent of a non-number".into());
                }
                self.i += 1;
                base = Node::Pct(Box::new(base));
            } else if self.eat_cmd("circ") {
                continue;
            } else {
                return Ok(base);
            }
        }
    }

    /// The argument of `^` or `_`: a braced group or a single token.
    fn script_arg(&mut self) -> R<Node> {
        if self.peek() == Some(&Tok::Ch('{')) {
            self.i += 1;
            let e = self.expr()?;
            self.expect_ch('}')?;
            return Ok(e);
        }
        match self.peek().cloned() {
            Some(Tok::Num(s)) => {
                self.i += 1;
                // x^23 is x^2 * 3 in LaTeX; only the first digit is the exponent.
                let mut it = s.chars();
                let first = it.next().unwrap_or('0');
                let rest: String = it.collect();
                if rest.is_empty() || first == '.' {
                    num_node(&s)
                } else {
                    Err("multi-digit bare exponent".into())
                }
            }
            Some(Tok::Ch('-')) => {
                self.i += 1;
                self.enter()?;
                let r = self.script_arg();
                self.depth -= 1;
                Ok(r?.neg())
            }
            _ => self.atom(),
        }
    }

    fn group_arg(&mut self) -> R<Node> {
        if self.eat_ch('{') {
            let e = self.expr()?;
            self.expect_ch('}')?;
            Ok(e)
        } else {
            match self.peek().cloned() {
                Some(Tok::Num(s)) => {
                    self.i += 1;
                    num_node(&s[..1.min(s.len())])
                }
                _ => self.atom(),
            }
        }
    }

    fn atom(&mut self) -> R<Node> {
        let Some(t) = self.peek().cloned() else {
            return Err("unexpected end".into());
        };
        self.i += 1;
        match t {
            Tok::Num(s) => {
                let n = num_node(&s)?;
                // Mixed number: 2\frac{1}{2}
                if let Node::Num(Num::Rat(w, 1)) = n {
                    if matches!(self.peek(), Some(Tok::Cmd(c)) if c == "frac") {
                        let save = self.i;
                        self.i += 1;
                        if let (
                            Ok(Node::Num(a @ Num::Rat(_, 1))),
                            Ok(Node::Num(b @ Num::Rat(_, 1))),
                        ) = (self.group_arg(), self.group_arg())
                        {
                            if let Some(f) = a.div(b) {
                                return Ok(Node::Num(Num::int(w).add(f)));
                            }
                        }
                        self.i = save;
                    }
                }
                Ok(n)
            }
            Tok::Letter(c) => {
                let mut name = c.to_ascii_lowercase().to_string();
                if self.eat_ch('_') {
                    let st = self.i;
                    self.script_arg()?;
                    name.push('_');
                    name.push_str(&tokens_text(&self.t[st..self.i]));
                    return Ok(Node::Sym(name));
                }
                if name == "e" {
                    return Ok(Node::E);
                }
                Ok(Node::Sym(name))
            }
            Tok::Ch('(') | Tok::Ch('[') => {
                let open = t.clone();
                let items = self.elements(&[Tok::Ch(')'), Tok::Ch(']')])?;
                let close = self.peek().cloned();
                if close != Some(Tok::Ch(')')) && close != Some(Tok::Ch(']')) {
                    return Err("unclosed bracket".into());
                }
                self.i += 1;
                let lopen = open == Tok::Ch('(');
                let ropen = close == Some(Tok::Ch(')'));
                bracket(items, lopen, ropen)
            }
            Tok::Ch('{') => {
                let items = self.elements(&[Tok::Ch('}')])?;
                self.expect_ch('}')?;
                if items.len() == 1 {
                    Ok(items.into_iter().next().unwrap_or(Node::int(0)))
                } else {
                    Ok(Node::Set(items))
                }
            }
            Tok::Ch('|') => {
                let e = self.expr()?;
                self.expect_ch('|')?;
                Ok(Node::Func(Func::Abs, Box::new(e)))
            }
            Tok::Cmd(c) => self.command(&c),
            Tok::Ch(c) => Err(format!("unexpected {c:?}")),
        }
    }

    fn braced_text(&mut self) -> R<String> {
        // raw text of a {...} group
        self.expect_ch('{')?;
        let st = self.i;
        let mut depth = 1;
        while let Some(t) = self.peek() {
            match t {
                Tok::Ch('{') => depth += 1,
                Tok::Ch('}') => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
            self.i += 1;
        }
        let s = tokens_text(&self.t[st..self.i]);
        self.expect_ch('}')?;
        Ok(s)
    }

    fn command(&mut self, c: &str) -> R<Node> {
        match c {
            "frac" | "dfrac" | "tfrac" | "cfrac" => {
                let a = self.group_arg()?;
                let b = self.group_arg()?;
                divide(a, b)
            }
            "binom" | "dbinom" | "tbinom" | "choose" => {
                let a = self.group_arg()?;
                let b = self.group_arg()?;
                match (a, b) {
                    (Node::Num(Num::Rat(n, 1)), Node::Num(Num::Rat(k, 1)))
                        if (0..=n).contains(&k) && n <= 60 =>
                    {
                        let mut r: i128 = 1;
                        for j in 0..k {
                            r = r * (n - j) / (j + 1);
                        }
                        Ok(Node::int(r))
                    }
                    _ => Err("binom".into()),
                }
            }
            "sqrt" => {
                let mut index = None;
                if self.eat_ch('[') {
                    index = Some(self.expr()?);
                    self.expect_ch(']')?;
                }
                let a = self.group_arg()?;
                Ok(match index {
                    None => Node::Func(Func::Sqrt, Box::new(a)),
                    Some(k) => Node::Pow(Box::new(a), Box::new(divide(Node::int(1), k)?)),
                })
            }
            "pi" => Ok(Node::Pi),
            "infty" | "infinity" => Ok(Node::Inf),
            "emptyset" | "varnothing" => Ok(Node::NamedSet("empty")),
            "mathbb" => {
                let s = self.braced_text()?;
                Ok(Node::NamedSet(match s.as_str() {
                    "R" => "reals",
                    "Z" => "integers",
                    "N" => "naturals",
                    "Q" => "rationals",
                    "C" => "complexes",
                    _ => return Err("mathbb".into()),
                }))
            }
            "text" | "textbf" | "mathrm" | "textit" | "mbox" | "mathit" | "mathbf"
            | "operatorname" => {
                let s = self.braced_text()?;
                let s: String = s
                    .chars()
                    .filter(|c| !c.is_whitespace() && *c != '(' && *c != ')')
                    .collect();
                if s.is_empty() {
                    return Err("empty text".into());
                }
                if s.chars().all(|c| c.is_ascii_digit()) {
                    return num_node(&s);
                }
                Ok(Node::Sym(s.to_lowercase()))
            }
            "{" => {
                let items = if self.peek() == Some(&Tok::Cmd("}".into())) {
                    Vec::new()
                } else {
                    self.elements(&[Tok::Cmd("}".into())])?
                };
                if !self.eat_cmd("}") {
                    return Err("unclosed set".into());
                }
                Ok(Node::Set(items))
            }
            "sin" | "cos" | "tan" | "ln" | "exp" | "log" | "lfloor" | "lceil" => self.function(c),
            "begin" => self.matrix(),
            "alpha" | "beta" | "gamma" | "theta" | "phi" | "lambda" | "mu" | "sigma" | "omega"
            | "delta" | "epsilon" | "rho" | "tau" | "psi" | "eta" | "zeta" | "xi" | "nu"
            | "kappa" | "chi" => Ok(Node::Sym(c.to_string())),
            "overline" => Err("repeating decimal".into()),
            o => Err(format!("unsupported command \\{o}")),
        }
    }

    fn function(&mut self, c: &str) -> R<Node> {
        match c {
            "lfloor" | "lceil" => {
                let e = self.expr()?;
                if !(self.eat_cmd("rfloor") || self.eat_cmd("rceil")) {
                    return Err("unclosed floor".into());
                }
                return Ok(Node::Func(
                    if c == "lfloor" {
                        Func::Floor
                    } else {
                        Func::Ceil
                    },
                    Box::new(e),
                ));
            }
            "log" => {
                let base = if self.eat_ch('_') {
                    Some(self.script_arg()?)
                } else {
                    None
                };
                let arg = self.func_arg()?;
                return Ok(Node::Log(
                    Box::new(arg),
                    Box::new(base.unwrap_or(Node::int(10))),
                ));
            }
            _ => {}
        }
        let f = match c {
            "sin" => Func::Sin,
            "cos" => Func::Cos,
            "tan" => Func::Tan,
            "ln" => Func::Ln,
            _ => Func::Exp,
        };
        let mut power = None;
        if self.eat_ch('^') {
            power = Some(self.script_arg()?);
        }
        let arg = self.func_arg()?;
        let n = if f == Func::Ln {
            Node::Log(Box::new(arg), Box::new(Node::E))
        } else {
            Node::Func(f, Box::new(arg))
        };
        Ok(match power {
            Some(p) => Node::Pow(Box::new(n), Box::new(p)),
            None => n,
        })
    }

    fn func_arg(&mut self) -> R<Node> {
        if self.peek() == Some(&Tok::Ch('(')) || self.peek() == Some(&Tok::Ch('{')) {
            return self.postfix();
        }
        // \sin 2x: the following product of atoms
        let mut acc = self.postfix()?;
        while matches!(self.peek(), Some(Tok::Num(_)) | Some(Tok::Letter(_))) {
            let r = self.postfix()?;
            acc = implicit_mul(acc, r);
        }
        Ok(acc)
    }

    fn matrix(&mut self) -> R<Node> {
        let env = self.braced_text()?;
        if !env.ends_with("matrix") {
            return Err(format!("environment {env}"));
        }
        let mut rows = vec![vec![]];
        loop {
            if self.eat_cmd("end") {
                self.braced_text()?;
                break;
            }
            let e = self.expr()?;
            if let Some(r) = rows.last_mut() {
                r.push(e);
            }
            if self.eat_ch('&') {
                continue;
            }
            if self.eat_cmd("\\") {
                if self.peek() == Some(&Tok::Cmd("end".into())) {
                    continue;
                }
                rows.push(vec![]);
                continue;
            }
            if self.peek() != Some(&Tok::Cmd("end".into())) {
                return Err("bad matrix".into());
            }
        }
        let w = rows[0].len();
        if rows.iter().any(|r| r.len() != w) {
            return Err("ragged matrix".into());
        }
        Ok(Node::Matrix(rows))
    }
}

fn tokens_text(t: &[Tok]) -> String {
    let mut s = String::new();
    for tok in t {
        match tok {
            Tok::Num(n) => s.push_str(n),
            Tok::Letter(c) | Tok::Ch(c) => s.push(*c),
            Tok::Cmd(c) => {
                s.push('\\');
                s.push_str(c);
            }
        }
    }
    s
}

fn bracket(items: Vec<Node>, lopen: bool, ropen: bool) -> R<Node> {
    match items.len() {
        0 => Err("empty brackets".into()),
        1 => {
            if lopen && ropen || !lopen && !ropen {
                Ok(items.into_iter().next().unwrap_or(Node::int(0)))
            } else {
                Err("half-open single".into())
            }
        }
        2 => {
            let (lo, hi) = (items[0].clone(), items[1].clone());
            // An interval that would be empty is a tuple.
            let empty = match (super::value::eval(&lo, 0), super::value::eval(&hi, 0)) {
                (Some(a), Some(b)) if lo_hi_numeric(&lo, &hi) => {
                    (lopen && ropen && b <= a) || (!lopen && !ropen && b < a)
                }
                _ => false,
            };
            if empty {
                Ok(Node::Tuple(items))
            } else {
                Ok(Node::Interval {
                    lo: Box::new(lo),
                    hi: Box::new(hi),
                    lopen,
                    ropen,
                })
            }
        }
        _ => {
            if lopen == ropen {
                Ok(Node::Tuple(items))
            } else {
                Err("half-open tuple".into())
            }
        }
    }
}

fn lo_hi_numeric(lo: &Node, hi: &Node) -> bool {
    let mut s = Vec::new();
    let mut t = Vec::new();
    free(lo, &mut s);
    free(hi, &mut t);
    s.is_empty() && t.is_empty()
}

fn free(n: &Node, out: &mut Vec<String>) {
    if let Node::Sym(s) = n {
        out.push(s.clone());
    }
    match n {
        Node::Add(v) | Node::Mul(v) => v.iter().for_each(|x| free(x, out)),
        Node::Pow(a, b) => {
            free(a, out);
            free(b, out)
        }
        Node::Func(_, a) => free(a, out),
        _ => {}
    }
}

fn mul(a: Node, b: Node) -> Node {
    match a {
        Node::Mul(mut v) => {
            v.push(b);
            Node::Mul(v)
        }
        a => Node::Mul(vec![a, b]),
    }
}

fn implicit_mul(a: Node, b: Node) -> Node {
    mul(a, b)
}

fn divide(a: Node, b: Node) -> R<Node> {
    if let (Node::Num(x), Node::Num(y)) = (&a, &b) {
        if !x.is_float() && !y.is_float() {
            return x
                .div(*y)
                .map(Node::Num)
                .ok_or_else(|| "division by zero".into());
        }
    }
    Ok(mul(a, Node::Pow(Box::new(b), Box::new(Node::int(-1)))))
}

/// Is the whole string a number with thousands separators (`12,000`)?
fn comma_number(s: &str) -> Option<Node> {
    let t = s.trim();
    let t2 = t.strip_prefix('-').unwrap_or(t);
    let (int, frac) = match t2.split_once('.') {
        Some((a, b)) if !b.is_empty() && b.chars().all(|c| c.is_ascii_digit()) => (a, Some(b)),
        Some(_) => return None,
        None => (t2, None),
    };
    let groups: Vec<&str> = int.split(',').collect();
    if groups.len() < 2
        || groups[0].is_empty()
        || groups[0].len() > 3
        || !groups[0].chars().all(|c| c.is_ascii_digit())
        || groups[1..]
            .iter()
            .any(|g| g.len() != 3 || !g.chars().all(|c| c.is_ascii_digit()))
    {
        return None;
    }
    let digits: String = groups.concat();
    let body = match frac {
        Some(f) => format!("{digits}.{f}"),
        None => digits,
    };
    let n = num_node(&body).ok()?;
    // latex2sympy's convert_number ignores the sign here only when it parses; keep it.
    Some(if t.starts_with('-') { n.neg() } else { n })
}

/// Parses a normalized LaTeX answer.
pub fn parse_latex(s: &str) -> R<Node> {
    if let Some(n) = comma_number(s) {
        return Ok(n);
    }
    let toks = tokenize(s)?;
    if toks.is_empty() {
        return Err("empty".into());
    }
    let mut p = P {
        t: &toks,
        i: 0,
        depth: 0,
    };
    let items = p.elements(&[])?;
    if p.i != toks.len() {
        return Err(format!("unexpected token at {}", p.i));
    }
    Ok(match items.len() {
        1 => {
            let n = items.into_iter().next().unwrap_or(Node::int(0));
            // a bare {x} is a one-element set
            if toks.first() == Some(&Tok::Ch('{'))
                && toks.last() == Some(&Tok::Ch('}'))
                && balanced_outer(&toks)
            {
                Node::Set(vec![n])
            } else {
                n
            }
        }
        _ => Node::Set(items),
    })
}

fn balanced_outer(t: &[Tok]) -> bool {
    let mut d = 0i32;
    for (k, tok) in t.iter().enumerate() {
        match tok {
            Tok::Ch('{') => d += 1,
            Tok::Ch('}') => {
                d -= 1;
                if d == 0 && k + 1 != t.len() {
                    return false;
                }
            }
            _ => {}
        }
    }
    true
}
