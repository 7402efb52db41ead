//! Answer extraction after math-verify's `parse` with its default targets (LaTeX and plain
//! expressions). math-verify finds candidates with regular expressions grouped by priority:
//!
//! | priority | LaTeX (`$..$`, `$$..$$`, `\(..\)`, `\[..\]`, ` [..] `, bare `\frac{a}{b}`) | plain numbers and expressions |
//! |---|---|---|
//! | 0 | `final answer is $X$. I hope` | `final answer is X. I hope` |
//! | 50 | `final answer ... is $X$`, a math environment holding `\boxed{}`, `\boxed{...}` (last one) | `final answer ... is X` |
//! | 100 | `answer: ... $X$` | `answer: ... [= ] X` |
//! | 200 | `answer ... $X$` | `answer ... [= ] X` |
//! | 300 | any math environment | any expression, any number |
//!
//! Within the first priority that has matches, the match that ends last is tried first, and
//! the first one that parses is the answer. The regular expressions are emulated here by
//! hand-written scanners that try the same alternatives in the same order.

use super::latex::parse_latex;
use super::normalize::{normalize, Boxed};
use super::value::{Node, Num};

/// What `parse` found: the parsed answer and the first candidate's text (math-verify's
/// string fallback, compared as a string).
#[derive(Clone, Debug, Default)]
pub struct Parsed {
    pub value: Option<Node>,
    pub text: Option<String>,
}

#[derive(Clone, Debug)]
struct Group {
    content: String,
    plain_boxed: bool,
    pct: bool,
}

#[derive(Clone, Debug)]
enum Kind {
    Latex(Vec<Group>),
    Number {
        integer: String,
        decimal: String,
        pct: bool,
    },
    Expr(String),
}

#[derive(Clone, Debug)]
struct Cand {
    start: usize,
    end: usize,
    kind: Kind,
}

fn starts(c: &[char], i: usize, pat: &str) -> bool {
    pat.chars()
        .enumerate()
        .all(|(k, p)| c.get(i + k) == Some(&p))
}

fn starts_ci(c: &[char], i: usize, pat: &str) -> bool {
    let mut k = i;
    for p in pat.chars() {
        match c.get(k) {
            Some(x) if x.to_lowercase().eq(p.to_lowercase()) => k += 1,
            _ => return false,
        }
    }
    true
}

fn ws(c: &[char], i: usize) -> bool {
    c.get(i).is_some_and(|x| x.is_whitespace())
}

fn skip_ws(c: &[char], mut i: usize) -> usize {
    while ws(c, i) {
        i += 1;
    }
    i
}

fn text(c: &[char], a: usize, b: usize) -> String {
    c[a..b].iter().collect()
}

// ---------------------------------------------------------------------------------------
// LaTeX environments
// ---------------------------------------------------------------------------------------

/// One environment at `p`: (end, content start, content end).
fn env_at(c: &[char], p: usize, boxed: bool) -> Option<(usize, usize, usize)> {
    let prev = if p == 0 { None } else { Some(c[p - 1]) };
    let r = env_at_inner(c, p, prev, boxed)?;
    if boxed {
        let content = &c[r.1..r.2];
        let pos = (0..content.len()).find(|&i| starts(content, i, "\\boxed{"))?;
        // \boxed{ X+? } : at least one character then a closing brace
        if !content.get(pos + 8..).is_some_and(|r| r.contains(&'}')) {
            return None;
        }
    }
    Some(r)
}

fn env_at_inner(
    c: &[char],
    p: usize,
    prev: Option<char>,
    boxed: bool,
) -> Option<(usize, usize, usize)> {
    let n = c.len();
    // $$ ... $$
    if starts(c, p, "$$") && prev != Some('\\') {
        let mut j = p + 2;
        let mut ok = None;
        while j < n {
            if c[j] == '$' && c.get(j + 1) == Some(&'$') {
                if j > p + 2 && c[j - 1] != '\\' {
                    ok = Some(j);
                }
                break;
            }
            j += 1;
        }
        if let Some(j) = ok {
            return Some((j + 2, p + 2, j));
        }
    }
    // \[ ... \]
    if starts(c, p, "\\[") && prev != Some('\\') {
        let mut j = p + 2;
        let mut ok = None;
        while j + 1 < n {
            if c[j] == '\\' && c[j + 1] == ']' {
                if j > p + 2 && c[j - 1] != '\\' {
                    ok = Some(j);
                }
                break;
            }
            j += 1;
        }
        if let Some(j) = ok {
            return Some((j + 2, p + 2, j));
        }
    }
    // $ ... $ (one line)
    if c.get(p) == Some(&'$') && prev != Some('\\') && !prev.is_some_and(|x| x.is_ascii_digit()) {
        let mut j = p + 1;
        let mut ok = None;
        while j < n {
            if c[j] == '\n' {
                break;
            }
            if c[j] == '$' {
                if j > p + 1 && c[j - 1] != '\\' {
                    ok = Some(j);
                }
                break;
            }
            if c[j] == '\\' && c.get(j + 1) == Some(&'$') {
                j += 2;
                continue;
            }
            j += 1;
        }
        if let Some(j) = ok {
            return Some((j + 1, p + 1, j));
        }
    }
    // \( ... \)
    if starts(c, p, "\\(") && prev != Some('\\') {
        let mut j = p + 2;
        let mut ok = None;
        while j < n {
            if c[j] == '\n' {
                break;
            }
            if c[j] == '\\' && c.get(j + 1) == Some(&')') {
                if j > p + 2 && c[j - 1] != '\\' {
                    ok = Some(j);
                }
                break;
            }
            j += 1;
        }
        if let Some(j) = ok {
            return Some((j + 2, p + 2, j));
        }
    }
    // \s[ ... ]\s
    if ws(c, p) && c.get(p + 1) == Some(&'[') {
        let mut j = p + 2;
        while j < n && c[j] != '\n' && c[j] != '[' && c[j] != ']' {
            j += 1;
        }
        if j < n && c[j] == ']' && j > p + 2 && ws(c, j + 1) {
            return Some((j + 2, p + 2, j));
        }
    }
    // -?\frac{num}{num}
    if !boxed {
        let q = if c.get(p) == Some(&'-') { p + 1 } else { p };
        if starts(c, q, "\\frac{") {
            let simple = |mut i: usize| -> Option<usize> {
                if c.get(i) == Some(&'-') {
                    i += 1;
                }
                let st = i;
                while c.get(i).is_some_and(|x| x.is_ascii_digit()) {
                    i += 1;
                }
                if i == st {
                    return None;
                }
                if matches!(c.get(i), Some('.') | Some(','))
                    && c.get(i + 1).is_some_and(|x| x.is_ascii_digit())
                {
                    i += 1;
                    while c.get(i).is_some_and(|x| x.is_ascii_digit()) {
                        i += 1;
                    }
                }
                Some(i)
            };
            if let Some(a) = simple(q + 6) {
                if c.get(a) == Some(&'}') && c.get(a + 1) == Some(&'{') {
                    if let Some(b) = simple(a + 2) {
                        if c.get(b) == Some(&'}') {
                            return Some((b + 1, p, b + 1));
                        }
                    }
                }
            }
        }
    }
    None
}

/// `\s*(?:\\?%|[Pp]ercent|[Pp]ercentage|[Pp]ct)?` after an environment.
fn percent_after(c: &[char], e: usize) -> (usize, bool) {
    let j = skip_ws(c, e);
    for w in ["\\%", "%", "Percent", "percent", "Pct", "pct"] {
        if starts(c, j, w) {
            return (j + w.chars().count(), true);
        }
    }
    (j, false)
}

/// A chain of environments (`$a$, $b$ and $c$`), greedy: the longest first; every shorter
/// chain is an alternative for patterns that need a suffix.
fn chain_at(c: &[char], p: usize, boxed: bool) -> Vec<(usize, Vec<Group>)> {
    let Some((e, cs, ce)) = env_at(c, p, boxed) else {
        return Vec::new();
    };
    let (mut end, pct) = percent_after(c, e);
    let mut groups = vec![Group {
        content: text(c, cs, ce),
        plain_boxed: false,
        pct,
    }];
    let mut out = vec![(end, groups.clone())];
    for _ in 0..5 {
        let mut j = skip_ws(c, end);
        let mut sep = None;
        for w in [",and", "and", ",or", "or", ","] {
            if starts(c, j, w) {
                sep = Some(j + w.len());
                break;
            }
        }
        let Some(s) = sep else { break };
        j = skip_ws(c, s);
        // `\s*` before an environment starting with whitespace (` [..] `) may give one back
        let found =
            env_at(c, j, boxed).or_else(|| if j > s { env_at(c, j - 1, boxed) } else { None });
        let Some((e2, cs2, ce2)) = found else { break };
        let (end2, pct2) = percent_after(c, e2);
        groups.push(Group {
            content: text(c, cs2, ce2),
            plain_boxed: false,
            pct: pct2,
        });
        end = end2;
        out.push((end, groups.clone()));
    }
    if boxed {
        // the boxed pattern has a bare `\s*` after each group
        for o in out.iter_mut() {
            o.0 = skip_ws(c, o.0);
        }
    }
    out.reverse();
    out
}

fn finditer_latex(c: &[char], boxed: bool, out: &mut Vec<Cand>) {
    let mut p = 0;
    while p < c.len() {
        if let Some((end, groups)) = chain_at(c, p, boxed).into_iter().next() {
            out.push(Cand {
                start: p,
                end,
                kind: Kind::Latex(groups),
            });
            p = end.max(p + 1);
        } else {
            p += 1;
        }
    }
}

/// Occurrences of `word` (case-insensitive) from `from`.
fn find_ci(c: &[char], from: usize, word: &str) -> Option<usize> {
    (from..c.len()).find(|&i| starts_ci(c, i, word))
}

/// `(?i:answer)(:)?.{0,50}?LATEX` (DOTALL).
fn latex_answer(c: &[char], colon: bool, out: &mut Vec<Cand>) {
    let mut from = 0;
    while let Some(s) = find_ci(c, from, "answer") {
        let mut q = s + 6;
        if colon {
            if c.get(q) != Some(&':') {
                from = s + 1;
                continue;
            }
            q += 1;
        }
        let mut hit = None;
        for g in 0..=50 {
            if q + g > c.len() {
                break;
            }
            if let Some((end, groups)) = chain_at(c, q + g, false).into_iter().next() {
                hit = Some((end, groups));
                break;
            }
        }
        match hit {
            Some((end, groups)) => {
                out.push(Cand {
                    start: s,
                    end,
                    kind: Kind::Latex(groups),
                });
                from = end.max(s + 1);
            }
            None => from = s + 1,
        }
    }
}

/// `(?i:final answer.{0,100}?)\s+is\:?\s*LATEX` (DOTALL).
fn latex_final_is(c: &[char], out: &mut Vec<Cand>) {
    let mut from = 0;
    while let Some(s) = find_ci(c, from, "final answer") {
        let mut hit = None;
        for g in 0..=100 {
            let q = s + 12 + g;
            if q > c.len() {
                break;
            }
            if !ws(c, q) {
                continue;
            }
            let j = skip_ws(c, q);
            if !starts(c, j, "is") {
                continue;
            }
            let mut k = j + 2;
            if c.get(k) == Some(&':') {
                k += 1;
            }
            let k2 = skip_ws(c, k);
            let found = chain_at(c, k2, false).into_iter().next().or_else(|| {
                if k2 > k {
                    chain_at(c, k2 - 1, false).into_iter().next()
                } else {
                    None
                }
            });
            if let Some(x) = found {
                hit = Some(x);
                break;
            }
        }
        match hit {
            Some((end, groups)) => {
                out.push(Cand {
                    start: s,
                    end,
                    kind: Kind::Latex(groups),
                });
                from = end.max(s + 1);
            }
            None => from = s + 1,
        }
    }
}

/// `(?i:final answer is)\:?\s*LATEX\.?\s?I hope` (DOTALL).
fn latex_final_hope(c: &[char], out: &mut Vec<Cand>) {
    let mut from = 0;
    while let Some(s) = find_ci(c, from, "final answer is") {
        let mut k = s + 15;
        if c.get(k) == Some(&':') {
            k += 1;
        }
        let k2 = skip_ws(c, k);
        let mut hit = None;
        'outer: for st in [k2, k2.saturating_sub(1).max(k)] {
            for (end, groups) in chain_at(c, st, false) {
                // the chain's trailing \s* may give back whitespace
                let env_end = end;
                for e in [env_end, trim_back_ws(c, env_end, st)] {
                    let mut j = e;
                    if c.get(j) == Some(&'.') {
                        j += 1;
                    }
                    for jj in [if ws(c, j) { j + 1 } else { j }, j] {
                        if starts(c, jj, "I hope") {
                            hit = Some((jj + 6, groups.clone()));
                            break 'outer;
                        }
                    }
                }
            }
        }
        match hit {
            Some((end, groups)) => {
                out.push(Cand {
                    start: s,
                    end,
                    kind: Kind::Latex(groups),
                });
                from = end;
            }
            None => from = s + 1,
        }
    }
}

fn trim_back_ws(c: &[char], mut e: usize, min: usize) -> usize {
    while e > min && ws(c, e - 1) {
        e -= 1;
    }
    e
}

/// `\\boxed{.+}` (DOTALL): from the first `\boxed{` to the last `}`.
fn plain_boxed(c: &[char], out: &mut Vec<Cand>) {
    let Some(b) = (0..c.len()).find(|&i| starts(c, i, "\\boxed{")) else {
        return;
    };
    let Some(last) = (b + 8..c.len()).rev().find(|&i| c[i] == '}') else {
        return;
    };
    out.push(Cand {
        start: b,
        end: last + 1,
        kind: Kind::Latex(vec![Group {
            content: text(c, b, last + 1),
            plain_boxed: true,
            pct: false,
        }]),
    });
}

// ---------------------------------------------------------------------------------------
// Plain numbers and expressions
// ---------------------------------------------------------------------------------------

const OPS: &str = "+-*×/^()÷";

/// Longest run of characters one plain expression or number may span. The regexes emulated
/// here repeat without bound (`\d+`, `[\d\s+*/()-]*`), and trying every end of every run from
/// every start made a verdict quadratic in the input: 20 000 digits took a third of a second,
/// `1 1 1 ...` nearly a second (found by timing the `verify_math` fuzz corpus). Repetitions
/// stop after this many characters, as a bounded regex (`\d{1,1000}`) would; nothing shorter
/// is affected.
const MAX_RUN: usize = 1_000;
const CURRENCY: &str = "$€£¥₹₽₪₩₫฿₡₢₣₤₥₦₧₨₩₪₫₭₮₯₰₱₲₳₴₵₶₷₸₹₺₻₼₽₾₿";

fn is_c(ch: char) -> bool {
    ch.is_ascii_digit() || ch == '.' || ch.is_whitespace() || OPS.contains(ch)
}

fn digit(c: &[char], i: usize) -> bool {
    c.get(i).is_some_and(|x| x.is_ascii_digit())
}

/// `(?:^|\s|=)(?:\*\*)?`: positions after the prefix, in the order the regex tries them.
fn prefix_ends(c: &[char], q: usize) -> Vec<usize> {
    let mut v = Vec::new();
    let mut add = |e: usize| {
        if starts(c, e, "**") {
            v.push(e + 2);
        }
        v.push(e);
    };
    if q == 0 {
        add(0);
    }
    if c.get(q).is_some_and(|x| x.is_whitespace() || *x == '=') {
        add(q + 1);
    }
    v
}

/// `expr_re` then the expression suffix: the first (end after suffix, expr text) that
/// `accept` takes, in the regex's order of preference (longest first).
fn expr_first(c: &[char], r: usize, accept: &dyn Fn(usize) -> bool) -> Option<(usize, String)> {
    let mut q = r;
    if c.get(q) == Some(&'-') {
        q += 1;
    }
    if c.get(q) == Some(&'(') {
        q += 1;
    }
    if c.get(q) == Some(&'-') {
        q += 1;
    }
    if !digit(c, q) {
        return None;
    }
    let mut run_end = q + 1;
    while run_end < c.len() && run_end - q < MAX_RUN && is_c(c[run_end]) {
        run_end += 1;
    }
    let first_op = (q + 1..run_end).find(|&i| OPS.contains(c[i]))?;
    let mut e = run_end;
    while e >= first_op + 2 {
        for with_paren in [true, false] {
            let ee = if with_paren {
                if c.get(e) == Some(&')') {
                    e + 1
                } else {
                    continue;
                }
            } else {
                e
            };
            let mut suffix_opts = [None, Some(ee)];
            if starts(c, ee, "**") {
                suffix_opts[0] = Some(ee + 2);
            }
            for s in suffix_opts.into_iter().flatten() {
                let end = if s == c.len() {
                    Some(s)
                } else if matches!(c[s], '.' | ',' | ':' | ')' | '$') || c[s].is_whitespace() {
                    Some(s + 1)
                } else {
                    None
                };
                if let Some(end) = end {
                    if accept(end) {
                        return Some((end, text(c, r, ee)));
                    }
                }
            }
        }
        e -= 1;
    }
    None
}

/// `number_re` at `r`: options (end, integer, decimal, percent).
fn number_options(c: &[char], r: usize) -> Vec<(usize, String, String, bool)> {
    let mut out: Vec<(usize, String, String)> = Vec::new();
    if r > 0 && digit(c, r - 1) {
        return Vec::new();
    }
    let neg = c.get(r) == Some(&'-');
    let q = if neg { r + 1 } else { r };
    // 1: -?[1-9]\d{0,2}(?:[ ,]\d{3})+ (\.\d+)?
    if c.get(q).is_some_and(|x| ('1'..='9').contains(x)) {
        for lead in (0..=2).rev() {
            if !(1..=lead).all(|k| digit(c, q + k)) {
                continue;
            }
            let mut i = q + 1 + lead;
            let mut group_ends = Vec::new();
            while i - q < MAX_RUN
                && matches!(c.get(i), Some(' ') | Some(','))
                && (1..=3).all(|k| digit(c, i + k))
            {
                i += 4;
                group_ends.push(i);
            }
            for &ge in group_ends.iter().rev() {
                let int = text(c, r, ge);
                if c.get(ge) == Some(&'.') && digit(c, ge + 1) {
                    let mut d = ge + 1;
                    while d - ge <= MAX_RUN && digit(c, d) {
                        d += 1;
                    }
                    out.push((d, int.clone(), text(c, ge, d)));
                }
                out.push((ge, int, String::new()));
            }
        }
    }
    // 2: -?\d+[.,]\d+
    if digit(c, q) {
        let mut i = q;
        while i - q < MAX_RUN && digit(c, i) {
            i += 1;
        }
        for ie in (q + 1..=i).rev() {
            if matches!(c.get(ie), Some('.') | Some(',')) && digit(c, ie + 1) {
                let mut d = ie + 1;
                while d - ie <= MAX_RUN && digit(c, d) {
                    d += 1;
                }
                for de in (ie + 2..=d).rev() {
                    out.push((de, text(c, r, ie), text(c, ie, de)));
                }
            }
        }
    }
    // 3: \.\d+
    if !neg && c.get(r) == Some(&'.') && digit(c, r + 1) {
        let mut d = r + 1;
        while d - r <= MAX_RUN && digit(c, d) {
            d += 1;
        }
        for de in (r + 2..=d).rev() {
            out.push((de, String::new(), text(c, r, de)));
        }
    }
    // 4: -?\d+
    if digit(c, q) {
        let mut i = q;
        while i - q < MAX_RUN && digit(c, i) {
            i += 1;
        }
        for ie in (q + 1..=i).rev() {
            out.push((ie, text(c, r, ie), String::new()));
        }
    }
    let mut res = Vec::new();
    for (e, int, dec) in out {
        // (?P<percent>\s*(?:%|[Pp]ercent|\s*[Pp]ercentage|\s*[Pp]ct))?
        let j = skip_ws(c, e);
        let mut pe = None;
        for w in [
            "%",
            "Percent",
            "percent",
            "Percentage",
            "percentage",
            "Pct",
            "pct",
        ] {
            if starts(c, j, w) {
                pe = Some(j + w.chars().count());
                break;
            }
        }
        if let Some(pe) = pe {
            res.push((pe, int.clone(), dec.clone(), true));
        }
        res.push((e, int, dec, false));
    }
    res
}

/// `EXPR_OR_NUMBER` at `q`: the first option, in the regex's order of preference, whose end
/// `accept` takes. `exprs` / `numbers` select the alternatives.
fn eon_first(
    c: &[char],
    q: usize,
    exprs: bool,
    numbers: bool,
    accept: &dyn Fn(usize) -> bool,
) -> Option<(usize, Cand)> {
    if exprs {
        for pe in prefix_ends(c, q) {
            if let Some((end, ex)) = expr_first(c, pe, accept) {
                return Some((
                    end,
                    Cand {
                        start: q,
                        end,
                        kind: Kind::Expr(ex),
                    },
                ));
            }
        }
    }
    if numbers {
        for pe in prefix_ends(c, q) {
            let mut starts_at = Vec::new();
            if c.get(pe).is_some_and(|x| CURRENCY.contains(*x)) {
                starts_at.push(pe + 1);
            }
            starts_at.push(pe);
            for r in starts_at {
                for (end, integer, decimal, pct) in number_options(c, r) {
                    if accept(end) {
                        return Some((
                            end,
                            Cand {
                                start: q,
                                end,
                                kind: Kind::Number {
                                    integer,
                                    decimal,
                                    pct,
                                },
                            },
                        ));
                    }
                }
            }
        }
    }
    None
}

fn not_followed_by_eq(c: &[char], e: usize) -> bool {
    c.get(skip_ws(c, e)) != Some(&'=')
}

/// `(?i:answer)(\:)?(?:.{0,100}=\s*|.{0,50}?)EON(?!\s*=)` (no DOTALL).
fn expr_answer(c: &[char], colon: bool, out: &mut Vec<Cand>) {
    let mut from = 0;
    while let Some(s) = find_ci(c, from, "answer") {
        let mut q = s + 6;
        if colon {
            if c.get(q) != Some(&':') {
                from = s + 1;
                continue;
            }
            q += 1;
        }
        let line_end = (q..c.len()).find(|&i| c[i] == '\n').unwrap_or(c.len());
        let try_at = |p: usize| -> Option<Cand> {
            eon_first(c, p, true, true, &|e| not_followed_by_eq(c, e)).map(|(e, mut cand)| {
                cand.start = s;
                cand.end = e;
                cand
            })
        };
        let mut hit = None;
        // branch 1: greedy .{0,100} then '=' then \s*
        let max_g = 100.min(line_end.saturating_sub(q));
        'b1: for g in (0..=max_g).rev() {
            let eq = q + g;
            if c.get(eq) != Some(&'=') {
                continue;
            }
            let ws_end = skip_ws(c, eq + 1);
            for p in (eq + 1..=ws_end).rev() {
                if let Some(cand) = try_at(p) {
                    hit = Some(cand);
                    break 'b1;
                }
            }
        }
        if hit.is_none() {
            for g in 0..=50.min(line_end.saturating_sub(q)) {
                if let Some(cand) = try_at(q + g) {
                    hit = Some(cand);
                    break;
                }
            }
        }
        match hit {
            Some(cand) => {
                from = cand.end.max(s + 1);
                out.push(cand);
            }
            None => from = s + 1,
        }
    }
}

/// `(?i:final answer.{0,100}?)\s+is\:?EON` (no DOTALL).
fn expr_final_is(c: &[char], out: &mut Vec<Cand>) {
    let mut from = 0;
    while let Some(s) = find_ci(c, from, "final answer") {
        let mut hit = None;
        for g in 0..=100 {
            let q = s + 12 + g;
            if q > c.len() || (g > 0 && c[q - 1] == '\n') {
                break;
            }
            if !ws(c, q) {
                continue;
            }
            let j = skip_ws(c, q);
            if !starts(c, j, "is") {
                continue;
            }
            let k = j + 2;
            let found = if c.get(k) == Some(&':') {
                eon_first(c, k + 1, true, true, &|_| true)
            } else {
                None
            };
            if let Some((e, mut cand)) = found.or_else(|| eon_first(c, k, true, true, &|_| true)) {
                cand.start = s;
                cand.end = e;
                hit = Some(cand);
                break;
            }
        }
        match hit {
            Some(cand) => {
                from = cand.end.max(s + 1);
                out.push(cand);
            }
            None => from = s + 1,
        }
    }
}

/// `(?i:final answer is)\:?\s*EON\.?\s?I hope` (no DOTALL).
fn expr_final_hope(c: &[char], out: &mut Vec<Cand>) {
    let mut from = 0;
    while let Some(s) = find_ci(c, from, "final answer is") {
        let mut k = s + 15;
        if c.get(k) == Some(&':') {
            k += 1;
        }
        let k2 = skip_ws(c, k);
        let mut hit = None;
        for st in (k..=k2).rev() {
            let hope_end = |e: usize| -> Option<usize> {
                let mut j = e;
                if c.get(j) == Some(&'.') {
                    j += 1;
                }
                let with_ws = if ws(c, j) { j + 1 } else { j };
                [with_ws, j]
                    .into_iter()
                    .find(|&jj| starts(c, jj, "I hope"))
                    .map(|jj| jj + 6)
            };
            if let Some((e, mut cand)) = eon_first(c, st, true, true, &|e| hope_end(e).is_some()) {
                cand.start = s;
                cand.end = hope_end(e).unwrap_or(e);
                hit = Some(cand);
                break;
            }
        }
        match hit {
            Some(cand) => {
                from = cand.end;
                out.push(cand);
            }
            None => from = s + 1,
        }
    }
}

fn finditer_plain(c: &[char], numbers: bool, out: &mut Vec<Cand>) {
    let mut p = 0;
    while p < c.len() {
        let found = eon_first(c, p, !numbers, numbers, &|_| true);
        match found {
            Some((e, cand)) if e > p => {
                out.push(cand);
                p = e;
            }
            _ => p += 1,
        }
    }
}

// ---------------------------------------------------------------------------------------
// From a candidate to a value
// ---------------------------------------------------------------------------------------

fn last_eq(s: &str) -> Option<String> {
    if s.contains(',') || s.contains(';') {
        return None;
    }
    let c: Vec<char> = s.chars().collect();
    let mut parts = Vec::new();
    let mut st = 0;
    for i in 0..c.len() {
        if c[i] == '=' && !(i > 0 && matches!(c[i - 1], '\\' | '<' | '!' | '>')) {
            parts.push(text(&c, st, i));
            st = i + 1;
        }
    }
    parts.push(text(&c, st, c.len()));
    (parts.len() > 2).then(|| parts.pop().unwrap_or_default())
}

fn parse_latex_with_fallback(s: &str) -> Option<Node> {
    match parse_latex(s) {
        Ok(n) => Some(n),
        Err(_) => last_eq(s).and_then(|l| parse_latex(&l).ok()),
    }
}

fn flatten_set(n: Node, out: &mut Vec<Node>) {
    match n {
        Node::Set(v) => out.extend(v),
        o => out.push(o),
    }
}

fn extract(c: &Cand) -> (Option<Node>, String) {
    match &c.kind {
        Kind::Latex(groups) => {
            let mut vals = Vec::new();
            let mut strs = Vec::new();
            for g in groups {
                let norm = normalize(
                    &g.content,
                    if g.plain_boxed {
                        Boxed::Last
                    } else {
                        Boxed::All
                    },
                );
                let v = parse_latex_with_fallback(&norm).map(|v| {
                    if g.pct {
                        Node::Pct(Box::new(v))
                    } else {
                        v
                    }
                });
                strs.push(norm);
                vals.push(v);
            }
            if vals.len() > 1 && vals.iter().all(Option::is_some) {
                let mut all = Vec::new();
                for v in vals.into_iter().flatten() {
                    flatten_set(v, &mut all);
                }
                return (Some(Node::Set(all)), strs.join(" and "));
            }
            (
                vals.into_iter().next().flatten(),
                strs.into_iter().next().unwrap_or_default(),
            )
        }
        Kind::Number {
            integer,
            decimal,
            pct,
        } => {
            let int: String = integer
                .chars()
                .filter(|ch| *ch != ',' && *ch != ' ')
                .collect();
            let int = int.trim_start_matches('0');
            let int = if int.is_empty() { "0" } else { int };
            let dec = decimal.replace(',', ".");
            let s = format!("{int}{dec}");
            let num = if dec.is_empty() {
                s.parse::<i128>()
                    .ok()
                    .map(Num::int)
                    .or_else(|| s.parse::<f64>().ok().map(Num::Float))
            } else {
                s.parse::<f64>().ok().map(Num::Float)
            };
            let v = num.map(|n| {
                let n = Node::Num(n);
                if *pct {
                    Node::Pct(Box::new(n))
                } else {
                    n
                }
            });
            (v, s)
        }
        Kind::Expr(e) => (
            super::pyexpr::parse_py(&e.replace('\n', " ").replace('^', "**")),
            e.clone(),
        ),
    }
}

/// math-verify's `parse(text)` with the default targets.
pub fn parse_answer(input: &str) -> Parsed {
    let c: Vec<char> = input.chars().collect();
    let mut fallback: Option<String> = None;
    for prio in [0, 50, 100, 200, 300] {
        let mut cands = Vec::new();
        match prio {
            0 => {
                latex_final_hope(&c, &mut cands);
                expr_final_hope(&c, &mut cands);
            }
            50 => {
                latex_final_is(&c, &mut cands);
                finditer_latex(&c, true, &mut cands);
                plain_boxed(&c, &mut cands);
                expr_final_is(&c, &mut cands);
            }
            100 => {
                latex_answer(&c, true, &mut cands);
                expr_answer(&c, true, &mut cands);
            }
            200 => {
                latex_answer(&c, false, &mut cands);
                expr_answer(&c, false, &mut cands);
            }
            _ => {
                finditer_latex(&c, false, &mut cands);
                finditer_plain(&c, false, &mut cands);
                finditer_plain(&c, true, &mut cands);
            }
        }
        // rightmost end first, then leftmost start; stable
        cands.sort_by(|a, b| b.end.cmp(&a.end).then(a.start.cmp(&b.start)));
        for cand in &cands {
            let (v, s) = extract(cand);
            if !s.is_empty() && fallback.is_none() {
                fallback = Some(s);
            }
            if v.is_some() {
                return Parsed {
                    value: v,
                    text: fallback,
                };
            }
        }
    }
    Parsed {
        value: None,
        text: fallback,
    }
}
