//! latex2sympy2_extended's `normalize_latex`, with math-verify's configuration (basic LaTeX,
//! units, malformed operators, nits, boxed extraction), rewritten as string scans.

/// Which `\boxed{}` contents to keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Boxed {
    All,
    Last,
}

fn starts(c: &[char], i: usize, pat: &str) -> bool {
    pat.chars()
        .enumerate()
        .all(|(k, p)| c.get(i + k) == Some(&p))
}

fn rfind(c: &[char], pat: &str, end: usize) -> Option<usize> {
    let n = pat.chars().count();
    if end < n {
        return None;
    }
    (0..=end - n).rev().find(|&i| starts(c, i, pat))
}

fn s(c: &[char]) -> String {
    c.iter().collect()
}

fn is_separator_text(t: &str) -> bool {
    // \b(and|or)\b|,|;
    if t.contains(',') || t.contains(';') {
        return true;
    }
    let c: Vec<char> = t.chars().collect();
    let w = |k: usize| {
        c.get(k)
            .is_some_and(|ch| ch.is_alphanumeric() || *ch == '_')
    };
    for i in 0..c.len() {
        for word in ["and", "or"] {
            if starts(&c, i, word) && (i == 0 || !w(i - 1)) && !w(i + word.len()) {
                return true;
            }
        }
    }
    false
}

/// `extract_boxed_content`.
pub fn extract_boxed(text: &str, mode: Boxed) -> String {
    let c: Vec<char> = text.chars().collect();
    let mut results: Vec<String> = Vec::new();
    let mut current = c.len();
    let mut last_boxed_start: Option<usize> = None;
    let mut max_pos = c.len();
    loop {
        let b = rfind(&c, "\\boxed", current);
        let f = rfind(&c, "\\fbox", current);
        let (start, cmd_end) = match (b, f) {
            (None, None) => break,
            (Some(x), None) => (x, x + 6),
            (None, Some(y)) => (y, y + 5),
            (Some(x), Some(y)) => {
                if x > y {
                    (x, x + 6)
                } else {
                    (y, y + 5)
                }
            }
        };
        let mut nxt = cmd_end;
        while nxt < max_pos && c[nxt].is_whitespace() {
            nxt += 1;
        }
        if nxt >= max_pos {
            break;
        }
        if c[nxt] == '{' {
            // find matching brace before max_pos
            let mut depth = 1;
            let mut i = nxt;
            let mut end = None;
            while i + 1 < max_pos {
                i += 1;
                if c[i] == '{' {
                    depth += 1;
                } else if c[i] == '}' {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(i);
                        break;
                    }
                }
            }
            let Some(ce) = end else {
                if results.is_empty() {
                    results.push(s(&c[nxt..]));
                }
                break;
            };
            let content = s(&c[nxt + 1..ce]).trim().to_string();
            if mode == Boxed::Last {
                if let Some(lbs) = last_boxed_start {
                    let between = s(&c[(ce + 1).min(lbs)..lbs]);
                    let prev = results.last().cloned().unwrap_or_default();
                    let ok = between.chars().count() < 10
                        || (content != prev
                            && between.chars().count() < 70
                            && is_separator_text(&between));
                    if !ok {
                        break;
                    }
                }
            }
            if results.last() != Some(&content) {
                results.push(content);
            }
            last_boxed_start = Some(start);
            max_pos = start;
        } else {
            if results.is_empty() {
                results.push(s(&c[nxt..]));
            }
            break;
        }
        current = start;
    }
    if results.is_empty() {
        return text.to_string();
    }
    results.reverse();
    results.join(",")
}

const LEFT_DELIMS: [&str; 18] = [
    "\\{",
    "{",
    "\\|",
    "|",
    "[",
    "(",
    "\\rbracl",
    "\\lgroup",
    "\\lbrace",
    "\\lbrack",
    "\\vert",
    "\\lvert",
    "\\lceil",
    "\\lfloor",
    "\\langle",
    "\\llcorner",
    "\\ulcorner",
    "\\vert",
];
const RIGHT_DELIMS: [&str; 17] = [
    "\\}",
    "}",
    "\\|",
    "|",
    "]",
    ")",
    "\\rbrack",
    "\\rgroup",
    "\\rbrace",
    "\\vert",
    "\\rvert",
    "\\rceil",
    "\\rfloor",
    "\\rangle",
    "\\lrcorner",
    "\\urcorner",
    "\\vert",
];

/// Removes `\left` / `\right` (and `\mleft` / `\mright`) before a delimiter.
fn strip_left_right(t: &str) -> String {
    let c: Vec<char> = t.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < c.len() {
        let mut done = false;
        for (kw, delims) in [
            ("\\left", &LEFT_DELIMS[..]),
            ("\\mleft", &LEFT_DELIMS[..]),
            ("\\right", &RIGHT_DELIMS[..]),
            ("\\mright", &RIGHT_DELIMS[..]),
        ] {
            if starts(&c, i, kw) {
                let j = i + kw.len();
                if delims.iter().any(|d| starts(&c, j, d)) {
                    i = j;
                    done = true;
                    break;
                }
            }
        }
        if !done {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

fn skip_ws(c: &[char], mut i: usize) -> usize {
    while i < c.len() && c[i].is_whitespace() {
        i += 1;
    }
    i
}

/// `to_remove_regex`.
fn remove_useless(t: &str) -> String {
    let c: Vec<char> = t.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < c.len() {
        if starts(&c, i, "\\mathrm{th}") {
            i += 11;
            continue;
        }
        if starts(&c, i, "\\!") {
            i = skip_ws(&c, i + 2);
            continue;
        }
        if starts(&c, i, "\\text") {
            let j = skip_ws(&c, i + 5);
            if c.get(j) == Some(&'{') {
                let k = skip_ws(&c, j + 1);
                if c.get(k) == Some(&'}') {
                    i = k + 1;
                    continue;
                }
            }
        }
        if starts(&c, i, "\\$") {
            i += 2;
            continue;
        }
        if c[i] == '$' {
            i += 1;
            continue;
        }
        if (c[i] == '"' || c[i] == '\'') && (i == 0 || c[i - 1] != '\\') {
            i += 1;
            continue;
        }
        if starts(&c, i, "\\displaystyle") {
            i += 13;
            continue;
        }
        out.push(c[i]);
        i += 1;
    }
    out
}

fn is_word(ch: Option<&char>) -> bool {
    ch.is_some_and(|c| c.is_alphanumeric() || *c == '_')
}

/// `replace_in_latex`: one left-to-right pass over the alternatives, in their order.
fn replace_in_latex(t: &str) -> String {
    let c: Vec<char> = t.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    let alpha = |k: usize| c.get(k).is_some_and(|ch| ch.is_ascii_alphabetic());
    while i < c.len() {
        // math: \math(rm|it|bf)
        if starts(&c, i, "\\mathrm") || starts(&c, i, "\\mathit") || starts(&c, i, "\\mathbf") {
            out.push_str("\\text");
            i += 7;
            continue;
        }
        if ["\\textnormal", "\\textbf", "\\textit", "\\textrm"]
            .iter()
            .any(|p| starts(&c, i, p))
        {
            let n = ["\\textnormal", "\\textbf", "\\textit", "\\textrm"]
                .iter()
                .find(|p| starts(&c, i, p))
                .map_or(0, |p| p.len());
            out.push_str("\\text");
            i += n;
            continue;
        }
        if ["\\dfrac", "\\tfrac", "\\cfrac"]
            .iter()
            .any(|p| starts(&c, i, p))
        {
            out.push_str("\\frac");
            i += 6;
            continue;
        }
        if c[i].is_whitespace() && c.get(i + 1) == Some(&'.') {
            out.push_str(" 0.");
            i += 2;
            continue;
        }
        if starts(&c, i, "{.") {
            out.push_str("{0.");
            i += 2;
            continue;
        }
        if starts(&c, i, "~=") {
            out.push_str("\\approx");
            i += 2;
            continue;
        }
        // comma: \s*\{\s*,\s*\}
        {
            let j = skip_ws(&c, i);
            if c.get(j) == Some(&'{') {
                let k = skip_ws(&c, j + 1);
                if c.get(k) == Some(&',') {
                    let m = skip_ws(&c, k + 1);
                    if c.get(m) == Some(&'}') {
                        out.push(',');
                        i = m + 1;
                        continue;
                    }
                }
            }
        }
        // and_or: (?<![a-zA-Z])(,?\s*(?:and|or))(?![a-zA-Z])
        if i == 0 || !c[i - 1].is_ascii_alphabetic() {
            let mut j = i;
            if c.get(j) == Some(&',') {
                j += 1;
            }
            j = skip_ws(&c, j);
            let mut matched = None;
            for w in ["and", "or"] {
                if starts(&c, j, w) && !alpha(j + w.len()) {
                    matched = Some(j + w.len());
                    break;
                }
            }
            // the regex backtracks `,?` but `\s*` cannot start with a letter anyway
            if let Some(e) = matched {
                if !(c[i].is_ascii_alphabetic() && i > 0 && c[i - 1].is_ascii_alphabetic()) {
                    out.push(',');
                    i = e;
                    continue;
                }
            }
        }
        // and_or_text: ,?\s*\\text{\s*(and|or)\s*}
        {
            let mut j = i;
            if c.get(j) == Some(&',') {
                j += 1;
            }
            j = skip_ws(&c, j);
            if starts(&c, j, "\\text{") {
                let k = skip_ws(&c, j + 6);
                for w in ["and", "or"] {
                    if starts(&c, k, w) {
                        let m = skip_ws(&c, k + w.len());
                        if c.get(m) == Some(&'}') {
                            out.push(',');
                            i = m + 1;
                            break;
                        }
                    }
                }
                if i > j {
                    continue;
                }
            }
        }
        if c[i] == '\\'
            && c.get(i + 1).is_some_and(|ch| ch.is_whitespace())
            && (i == 0 || c[i - 1] != '\\')
        {
            out.push(' ');
            i += 2;
            continue;
        }
        if starts(&c, i, "infinity") {
            out.push_str("\\infty");
            i += 8;
            continue;
        }
        // dot: ,?\\ldots
        if starts(&c, i, "\\ldots") || starts(&c, i, ",\\ldots") {
            out.push(' ');
            i += if c[i] == ',' { 7 } else { 6 };
            continue;
        }
        // percentage / percent / pct (\s*\bWORD\b) and their \text{} forms
        let mut hit = false;
        for (w, rep) in [
            ("percentage", "\\%"),
            ("\\text{percentage}", "%"),
            ("percent", "\\%"),
            ("\\text{percent}", "%"),
            ("pct", "\\%"),
            ("\\text{pct}", "%"),
        ] {
            if w.starts_with('\\') {
                if starts(&c, i, w) {
                    out.push_str(rep);
                    i += w.chars().count();
                    hit = true;
                    break;
                }
            } else {
                let j = skip_ws(&c, i);
                let bound_before = j == 0 || !is_word(c.get(j - 1));
                if starts(&c, j, w) && bound_before && !is_word(c.get(j + w.len())) {
                    out.push_str(rep);
                    i = j + w.len();
                    hit = true;
                    break;
                }
            }
        }
        if hit {
            continue;
        }
        if starts(&c, i, "inf") && (i == 0 || c[i - 1] != '\\') && !starts(&c, i + 3, "inity") {
            out.push_str("\\infty");
            i += 3;
            continue;
        }
        if starts(&c, i, " sqrt") {
            out.push_str("\\sqrt");
            i += 5;
            continue;
        }
        out.push(c[i]);
        i += 1;
    }
    out
}

const UNITS: &[&str] = &[
    "integerpoint",
    "feet",
    "sue",
    "digit",
    "pound",
    "meal",
    "edge",
    "student",
    "children ticket",
    "multiple",
    "east",
    "degree",
    "mph",
    "kmph",
    "ft",
    "m square",
    " m east",
    "sq m",
    "deg",
    "mile",
    "q .",
    "monkey",
    "prime",
    "ratio",
    "profit of rs",
    "rd",
    "o",
    "gm",
    "p . m",
    "lb",
    "tile",
    "per",
    "dm",
    "lt",
    "gain",
    "ab",
    "way",
    "west",
    "a .",
    "b .",
    "c .",
    "d .",
    "e .",
    "f .",
    "g .",
    "h .",
    "t",
    "h",
    "no change",
    "men",
    "soldier",
    "pie",
    "bc",
    "excess",
    "st",
    "inches",
    "noon",
    "cent",
    "by",
    "gal",
    "kmh",
    "c",
    "acre",
    "rise",
    "a . m",
    "th",
    "π r 2",
    "sq",
    "mark",
    "l",
    "toy",
    "coin",
    "sq . m",
    "gallon",
    "° f",
    "profit",
    "minw",
    "yr",
    "women",
    "am",
    "pm",
    "hr",
    "cu cm",
    "square",
    "v â € ™",
    "are",
    "rupee",
    "rounds",
    "cubic",
    "cc",
    "mtr",
    "s",
    "ohm",
    "number",
    "kmph",
    "day",
    "hour",
    "minute",
    "min",
    "second",
    "man",
    "woman",
    "sec",
    "cube",
    "mt",
    "sq inch",
    "mp",
    "∏ cm ³",
    "hectare",
    "more",
    "sec",
    "unit",
    "cu . m",
    "cm 2",
    "rs .",
    "rs",
    "kg",
    "g",
    "month",
    "km",
    "m",
    "cm",
    "mm",
    "apple",
    "liter",
    "loss",
    "yard",
    "pure",
    "year",
    "increase",
    "decrease",
    "d",
    "less",
    "Surface",
    "litre",
    "pi sq m",
    "s .",
    "metre",
    "meter",
    "inch",
];

/// Does `c[i..]` match `unit` (where `.` is any character) followed by `(s|es)?\s*$`?
fn unit_tail(c: &[char], i: usize, unit: &str) -> bool {
    let mut k = i;
    for u in unit.chars() {
        match c.get(k) {
            Some(ch) if u == '.' || *ch == u => k += 1,
            _ => return false,
        }
    }
    let rest_ws = |k: usize| c[k.min(c.len())..].iter().all(|ch| ch.is_whitespace());
    rest_ws(k)
        || (c.get(k) == Some(&'s') && rest_ws(k + 1))
        || (c.get(k) == Some(&'e') && c.get(k + 1) == Some(&'s') && rest_ws(k + 2))
}

/// `units_regex.sub(r"\1", text)`: `(\d|\}|\s)\s*UNIT(s|es)?\s*$`.
fn strip_unit(t: &str) -> String {
    let c: Vec<char> = t.chars().collect();
    for i in 0..c.len() {
        if !(c[i].is_ascii_digit() || c[i] == '}' || c[i].is_whitespace()) {
            continue;
        }
        // \s* is greedy but may give back; try every split
        let mut j = i + 1;
        loop {
            if UNITS.iter().any(|u| unit_tail(&c, j, u)) {
                let mut out: String = c[..=i].iter().collect();
                // the match spans to the end: nothing follows
                out.truncate(out.len());
                return out;
            }
            if j < c.len() && c[j].is_whitespace() {
                j += 1;
            } else {
                break;
            }
        }
    }
    t.to_string()
}

/// `unit_superscript_regex`: `(\\(?:text|mbox){.*?})(\^\d|\{\^\d\})?$` removed.
fn strip_text_suffix(t: &str) -> String {
    let c: Vec<char> = t.chars().collect();
    for i in 0..c.len() {
        if !(starts(&c, i, "\\text{") || starts(&c, i, "\\mbox{")) {
            continue;
        }
        // lazy .*? up to a '}' that is followed by an optional ^d / {^d} and the end
        for k in (i + 6).max(c.len().saturating_sub(5))..c.len() {
            if c[k] != '}' {
                continue;
            }
            let rest: String = c[k + 1..].iter().collect();
            let ok = rest.is_empty()
                || rest == "\n"
                || (rest.len() == 2
                    && rest.starts_with('^')
                    && rest.chars().nth(1).is_some_and(|d| d.is_ascii_digit()))
                || (rest.chars().count() == 4
                    && rest.starts_with("{^")
                    && rest.ends_with('}')
                    && rest.chars().nth(2).is_some_and(|d| d.is_ascii_digit()));
            if ok {
                return c[..i].iter().collect();
            }
        }
    }
    t.to_string()
}

/// `_fix_sqrt`.
fn fix_sqrt(t: &str) -> String {
    if !t.contains("\\sqrt") {
        return t.to_string();
    }
    let parts: Vec<&str> = t.split("\\sqrt").collect();
    let mut out = parts[0].to_string();
    for p in &parts[1..] {
        let p = p.trim_start();
        let mut ch = p.chars();
        match ch.next() {
            Some(a) if a != '{' && a != '[' => {
                out.push_str("\\sqrt{");
                out.push(a);
                out.push('}');
                out.push_str(ch.as_str());
            }
            _ => {
                out.push_str("\\sqrt");
                out.push_str(p);
            }
        }
    }
    out
}

/// `_fix_fracs`.
fn fix_fracs(t: &str) -> String {
    let parts: Vec<&str> = t.split("\\frac").collect();
    let mut out = parts[0].to_string();
    for p in &parts[1..] {
        let p = p.trim_start();
        out.push_str("\\frac");
        let ch: Vec<char> = p.chars().collect();
        if ch.first() == Some(&'{') {
            out.push_str(p);
        } else if ch.len() < 2 {
            return t.to_string();
        } else {
            let (a, b) = (ch[0], ch[1]);
            let post: String = ch[2..].iter().collect();
            if b != '{' {
                out.push_str(&format!("{{{a}}}{{{b}}}{post}"));
            } else {
                out.push_str(&format!("{{{a}}}{b}{post}"));
            }
        }
    }
    out
}

/// `_fix_a_slash_b`.
fn fix_a_slash_b(t: &str) -> String {
    let parts: Vec<&str> = t.split('/').collect();
    if parts.len() != 2 {
        return t.to_string();
    }
    match (parts[0].parse::<i64>(), parts[1].parse::<i64>()) {
        (Ok(a), Ok(b)) if format!("{a}/{b}") == t => format!("\\frac{{{a}}}{{{b}}}"),
        _ => t.to_string(),
    }
}

/// The malformed-operator regexes.
fn fix_malformed(t: &str) -> String {
    let mut c: Vec<char> = t.chars().collect();
    // \^\s?\((.*?)\) -> ^{\1}
    let mut out = String::new();
    let mut i = 0;
    while i < c.len() {
        if c[i] == '^' {
            let mut j = i + 1;
            if c.get(j).is_some_and(|x| x.is_whitespace()) && c.get(j + 1) == Some(&'(') {
                j += 1;
            }
            if c.get(j) == Some(&'(') {
                if let Some(k) = (j + 1..c.len()).find(|&k| c[k] == ')') {
                    out.push_str("^{");
                    out.extend(&c[j + 1..k]);
                    out.push('}');
                    i = k + 1;
                    continue;
                }
            }
        }
        out.push(c[i]);
        i += 1;
    }
    c = out.chars().collect();
    // sqrt\s?\((.*?)\) -> \\sqrt{\1}
    let mut out = String::new();
    let mut i = 0;
    while i < c.len() {
        if starts(&c, i, "sqrt") {
            let mut j = i + 4;
            if c.get(j).is_some_and(|x| x.is_whitespace()) && c.get(j + 1) == Some(&'(') {
                j += 1;
            }
            if c.get(j) == Some(&'(') {
                if let Some(k) = (j + 1..c.len()).find(|&k| c[k] == ')') {
                    out.push_str("\\sqrt{");
                    out.extend(&c[j + 1..k]);
                    out.push('}');
                    i = k + 1;
                    continue;
                }
            }
        }
        out.push(c[i]);
        i += 1;
    }
    c = out.chars().collect();
    // \\frac\s?(\d)\s?(\d+) -> \frac{\1}{\2}
    let mut out = String::new();
    let mut i = 0;
    while i < c.len() {
        if starts(&c, i, "\\frac") {
            let mut j = i + 5;
            if c.get(j).is_some_and(|x| x.is_whitespace()) {
                j += 1;
            }
            if c.get(j).is_some_and(|x| x.is_ascii_digit()) {
                let a = c[j];
                let mut k = j + 1;
                if c.get(k).is_some_and(|x| x.is_whitespace())
                    && c.get(k + 1).is_some_and(|x| x.is_ascii_digit())
                {
                    k += 1;
                }
                if c.get(k).is_some_and(|x| x.is_ascii_digit()) {
                    let st = k;
                    while k < c.len() && c[k].is_ascii_digit() {
                        k += 1;
                    }
                    out.push_str(&format!("\\frac{{{a}}}{{{}}}", s(&c[st..k])));
                    i = k;
                    continue;
                }
            }
        }
        out.push(c[i]);
        i += 1;
    }
    // \\sqrt\s?(\d) -> \sqrt{\1}
    c = out.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < c.len() {
        if starts(&c, i, "\\sqrt") {
            let mut j = i + 5;
            if c.get(j).is_some_and(|x| x.is_whitespace())
                && c.get(j + 1).is_some_and(|x| x.is_ascii_digit())
            {
                j += 1;
            }
            if c.get(j).is_some_and(|x| x.is_ascii_digit()) {
                out.push_str(&format!("\\sqrt{{{}}}", c[j]));
                i = j + 1;
                continue;
            }
        }
        out.push(c[i]);
        i += 1;
    }
    out.replace(" sqrt", "\\sqrt")
}

/// `normalize_latex(text, config)` with math-verify's configuration.
pub fn normalize(text: &str, boxed: Boxed) -> String {
    let mut t = extract_boxed(text, boxed);
    // basic latex
    t = t
        .replace("\\mathrm{T}", "T")
        .replace("\\mathrm{d}", "d")
        .replace("{\\rm d}", "d");
    t = t
        .replace("\\left[\\begin{matrix}", "\\begin{bmatrix}")
        .replace("\\end{matrix}\\right]", "\\end{bmatrix}");
    t = strip_left_right(&t);
    t = remove_useless(&t);
    t = replace_in_latex(&t);
    t = t.replace(['\n', '\t'], " ");
    if !t.contains("matrix") {
        // \\\\(?=[a-zA-Z]) -> \\
        let c: Vec<char> = t.chars().collect();
        let mut out = String::new();
        let mut i = 0;
        while i < c.len() {
            if c[i] == '\\'
                && c.get(i + 1) == Some(&'\\')
                && c.get(i + 2).is_some_and(|x| x.is_ascii_alphabetic())
            {
                out.push('\\');
                i += 2;
                continue;
            }
            out.push(c[i]);
            i += 1;
        }
        t = out;
    }
    // units
    let u = strip_text_suffix(&t).trim().to_string();
    if !u.is_empty() && u != t {
        t = u;
    }
    for _ in 0..2 {
        let u = strip_unit(&t);
        if !u.is_empty() && u != t {
            t = u;
        }
    }
    // nits
    if t.starts_with('.') {
        t = format!("0{t}");
    }
    if t == "0.5" {
        t = "\\frac{1}{2}".into();
    }
    // malformed operators
    t = fix_malformed(&t);
    t = fix_sqrt(&t);
    t = fix_fracs(&t);
    t = fix_a_slash_b(&t);
    t.trim().to_string()
}
