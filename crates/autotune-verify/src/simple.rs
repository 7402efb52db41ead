//! `exact`, `numeric` and `choice`: the verifiers for answers with one written form.

use crate::{check_options, parse_option, AnswerVerifier, Item, Verdict, VerifyError};

/// How `exact` treats whitespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Whitespace {
    /// Byte for byte.
    Exact,
    /// Leading and trailing whitespace ignored.
    Trim,
    /// Trimmed, and every run of whitespace inside counts as one space.
    Collapse,
    /// All whitespace ignored.
    Remove,
}

/// String equality of the answer. Options: `case=sensitive|insensitive` (default
/// sensitive), `whitespace=exact|trim|collapse|remove` (default collapse).
#[derive(Clone, Debug)]
pub struct ExactVerifier {
    pub ignore_case: bool,
    pub whitespace: Whitespace,
}

impl Default for ExactVerifier {
    fn default() -> Self {
        Self {
            ignore_case: false,
            whitespace: Whitespace::Collapse,
        }
    }
}

impl ExactVerifier {
    pub fn from_options(options: &[(String, String)]) -> Result<Self, VerifyError> {
        check_options("exact", options, &["case", "whitespace"])?;
        let mut v = Self::default();
        for (k, val) in options {
            let bad = || VerifyError::Option {
                verifier: "exact".into(),
                message: format!(
                    "option `{k}={val}`: expected {}",
                    match k.as_str() {
                        "case" => "sensitive or insensitive",
                        _ => "exact, trim, collapse or remove",
                    }
                ),
            };
            match (k.as_str(), val.as_str()) {
                ("case", "sensitive") => v.ignore_case = false,
                ("case", "insensitive") => v.ignore_case = true,
                ("whitespace", "exact") => v.whitespace = Whitespace::Exact,
                ("whitespace", "trim") => v.whitespace = Whitespace::Trim,
                ("whitespace", "collapse") => v.whitespace = Whitespace::Collapse,
                ("whitespace", "remove") => v.whitespace = Whitespace::Remove,
                _ => return Err(bad()),
            }
        }
        Ok(v)
    }

    fn normalize(&self, s: &str) -> String {
        let s = match self.whitespace {
            Whitespace::Exact => s.to_string(),
            Whitespace::Trim => s.trim().to_string(),
            Whitespace::Collapse => s.split_whitespace().collect::<Vec<_>>().join(" "),
            Whitespace::Remove => s.chars().filter(|c| !c.is_whitespace()).collect(),
        };
        if self.ignore_case {
            s.to_lowercase()
        } else {
            s
        }
    }
}

impl AnswerVerifier for ExactVerifier {
    fn pure(&self) -> bool {
        true
    }

    fn name(&self) -> &'static str {
        "exact"
    }

    fn verify(&self, item: &Item) -> Verdict {
        let p = self.normalize(&item.prediction);
        if p == self.normalize(&item.gold) {
            Verdict::correct(Some(p))
        } else {
            Verdict::wrong(Some(p), "differs from the gold answer")
        }
    }
}

/// A number written as an integer (`-1,234`), a decimal (`0.5`, `.5`), a fraction (`3/4`),
/// scientific notation (`1.5e-3`, `1.5E3`, `1.5×10^3`, `1.5*10^-3`) or a percentage (`50%`,
/// read as 0.5 when `percent=fraction`, as 50 by default). Returns `None` for anything else,
/// and for a number too large for an `f64` (`1×10^400`, `1e308/1e-308`): the value is always
/// finite.
pub fn parse_number(s: &str, percent_as_fraction: bool) -> Option<f64> {
    parse_number_any(s, percent_as_fraction).filter(|v| v.is_finite())
}

fn parse_number_any(s: &str, percent_as_fraction: bool) -> Option<f64> {
    let mut t: String = s
        .trim()
        .chars()
        .filter(|c| *c != ' ' && *c != '$')
        .collect();
    let mut scale = 1.0;
    if let Some(x) = t.strip_suffix('%') {
        t = x.to_string();
        if percent_as_fraction {
            scale = 0.01;
        }
    }
    for sep in ["×10^", "x10^", "*10^", "\\times10^", "\\cdot10^"] {
        if let Some((m, e)) = t.split_once(sep) {
            let e = e.trim_matches(|c| c == '{' || c == '}');
            let m: f64 = parse_plain(m)?;
            let e: i32 = e.parse().ok()?;
            return Some(m * 10f64.powi(e) * scale);
        }
    }
    if let Some((a, b)) = t.split_once('/') {
        let (a, b) = (parse_plain(a)?, parse_plain(b)?);
        return (b != 0.0).then(|| a / b * scale);
    }
    parse_plain(&t).map(|v| v * scale)
}

/// An integer, decimal or e-notation number, with optional sign and thousands separators.
fn parse_plain(s: &str) -> Option<f64> {
    let s = s.trim();
    if s.is_empty() || !s.chars().any(|c| c.is_ascii_digit()) {
        return None;
    }
    // Thousands separators only in groups of three before any decimal point.
    let (int, frac) = s.split_once('.').map_or((s, None), |(a, b)| (a, Some(b)));
    let int = if int.contains(',') {
        let digits = int.trim_start_matches(['+', '-']);
        let groups: Vec<&str> = digits.split(',').collect();
        let ok = !groups[0].is_empty()
            && groups[0].len() <= 3
            && groups[1..].iter().all(|g| g.len() == 3);
        if !ok {
            return None;
        }
        int.replace(',', "")
    } else {
        int.to_string()
    };
    let joined = match frac {
        Some(f) => format!("{int}.{f}"),
        None => int,
    };
    let v: f64 = joined.parse().ok()?;
    v.is_finite().then_some(v)
}

/// The last number-looking token of free text (for predictions that are chains of thought).
pub fn last_number(text: &str) -> Option<String> {
    let bytes: Vec<char> = text.chars().collect();
    let is_num_char = |c: char| c.is_ascii_digit() || ".,/eE%+-".contains(c);
    let mut best: Option<String> = None;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit()
            || ((bytes[i] == '-' || bytes[i] == '.')
                && bytes.get(i + 1).is_some_and(|c| c.is_ascii_digit()))
        {
            let start = i;
            i += 1;
            while i < bytes.len() && is_num_char(bytes[i]) {
                i += 1;
            }
            let tok: String = bytes[start..i].iter().collect();
            let tok = tok
                .trim_end_matches(['.', ',', '+', '-', '/', 'e', 'E'])
                .to_string();
            if parse_number(&tok, false).is_some() {
                best = Some(tok);
            }
        } else {
            i += 1;
        }
    }
    best
}

/// Numeric equality within a tolerance. Options: `rel_tol` (default 1e-6), `abs_tol`
/// (default 1e-9), `extract=last|whole` (default last: the last number in the prediction;
/// whole: the prediction must be a number), `percent=number|fraction` (`50%` is 50, or 0.5).
#[derive(Clone, Debug)]
pub struct NumericVerifier {
    pub rel_tol: f64,
    pub abs_tol: f64,
    pub extract_last: bool,
    pub percent_as_fraction: bool,
}

impl Default for NumericVerifier {
    fn default() -> Self {
        Self {
            rel_tol: 1e-6,
            abs_tol: 1e-9,
            extract_last: true,
            percent_as_fraction: false,
        }
    }
}

impl NumericVerifier {
    pub fn from_options(options: &[(String, String)]) -> Result<Self, VerifyError> {
        check_options(
            "numeric",
            options,
            &["rel_tol", "abs_tol", "extract", "percent"],
        )?;
        let mut v = Self::default();
        for (k, val) in options {
            match k.as_str() {
                "rel_tol" | "abs_tol" => {
                    let x: f64 = parse_option("numeric", k, val, "a number >= 0")?;
                    if !(x >= 0.0 && x.is_finite()) {
                        return Err(VerifyError::Option {
                            verifier: "numeric".into(),
                            message: format!("option `{k}={val}`: expected a number >= 0"),
                        });
                    }
                    if k == "rel_tol" {
                        v.rel_tol = x;
                    } else {
                        v.abs_tol = x;
                    }
                }
                "extract" => {
                    v.extract_last = match val.as_str() {
                        "last" => true,
                        "whole" => false,
                        _ => {
                            return Err(VerifyError::Option {
                                verifier: "numeric".into(),
                                message: format!("option `extract={val}`: expected last or whole"),
                            })
                        }
                    }
                }
                _ => {
                    v.percent_as_fraction = match val.as_str() {
                        "number" => false,
                        "fraction" => true,
                        _ => {
                            return Err(VerifyError::Option {
                                verifier: "numeric".into(),
                                message: format!(
                                    "option `percent={val}`: expected number or fraction"
                                ),
                            })
                        }
                    }
                }
            }
        }
        Ok(v)
    }

    pub fn close(&self, a: f64, b: f64) -> bool {
        (a - b).abs() <= self.abs_tol.max(self.rel_tol * a.abs().max(b.abs()))
    }
}

impl AnswerVerifier for NumericVerifier {
    fn pure(&self) -> bool {
        true
    }

    fn name(&self) -> &'static str {
        "numeric"
    }

    fn verify(&self, item: &Item) -> Verdict {
        let Some(gold) = parse_number(&item.gold, self.percent_as_fraction) else {
            return Verdict::wrong(None, format!("gold answer `{}` is not a number", item.gold));
        };
        let text = if self.extract_last {
            last_number(&item.prediction)
        } else {
            Some(item.prediction.trim().to_string())
        };
        let Some(text) = text else {
            return Verdict::wrong(None, "no number in the prediction");
        };
        match parse_number(&text, self.percent_as_fraction) {
            None => Verdict::wrong(Some(text), "not a number"),
            Some(p) if self.close(p, gold) => Verdict::correct(Some(text)),
            Some(_) => Verdict::wrong(Some(text), "a different number"),
        }
    }
}

/// Multiple choice. The gold answer is a letter (`B`, `(B)`, `b`); the prediction's choice is
/// taken from "answer is (B)" / "Answer: B" phrases, else the last parenthesised letter, else
/// a prediction that is just a letter. Option `letters` (default `ABCDEFGHIJ`).
#[derive(Clone, Debug)]
pub struct ChoiceVerifier {
    pub letters: Vec<char>,
}

impl Default for ChoiceVerifier {
    fn default() -> Self {
        Self {
            letters: "ABCDEFGHIJ".chars().collect(),
        }
    }
}

fn bare_letter(s: &str, letters: &[char]) -> Option<char> {
    let t = s
        .trim()
        .trim_matches(|c: char| "()[]{}*.:;,'\"` $".contains(c))
        .trim();
    let t = t
        .strip_prefix("\\text{")
        .map_or(t, |x| x.trim_end_matches('}'));
    let mut cs = t.chars();
    let c = cs.next()?.to_ascii_uppercase();
    (cs.next().is_none() && letters.contains(&c)).then_some(c)
}

impl ChoiceVerifier {
    pub fn from_options(options: &[(String, String)]) -> Result<Self, VerifyError> {
        check_options("choice", options, &["letters"])?;
        let mut v = Self::default();
        for (_, val) in options {
            let letters: Vec<char> = val.chars().map(|c| c.to_ascii_uppercase()).collect();
            if letters.is_empty() || !letters.iter().all(char::is_ascii_uppercase) {
                return Err(VerifyError::Option {
                    verifier: "choice".into(),
                    message: format!("option `letters={val}`: expected letters, e.g. ABCD"),
                });
            }
            v.letters = letters;
        }
        Ok(v)
    }

    /// The chosen letter of a free-text prediction.
    pub fn extract(&self, text: &str) -> Option<char> {
        if let Some(c) = bare_letter(text, &self.letters) {
            return Some(c);
        }
        let lower = text.to_ascii_lowercase();
        // The last "answer is X" / "answer: X" phrase.
        let mut found = None;
        for key in ["answer is", "answer:", "choice is"] {
            let mut from = 0;
            while let Some(pos) = lower[from..].find(key) {
                let at = from + pos + key.len();
                let rest: String = text[at..].chars().take(8).collect();
                let word = rest
                    .trim_start()
                    .split(|c: char| c.is_whitespace() || c == '.' || c == ',')
                    .next()
                    .unwrap_or("");
                if let Some(c) = bare_letter(word, &self.letters) {
                    if found.is_none_or(|(p, _)| at > p) {
                        found = Some((at, c));
                    }
                }
                from = at;
            }
        }
        if let Some((_, c)) = found {
            return Some(c);
        }
        // The last parenthesised letter, e.g. "(C)".
        let cs: Vec<char> = text.chars().collect();
        (0..cs.len().saturating_sub(2))
            .rev()
            .find(|&i| cs[i] == '(' && cs[i + 2] == ')' && self.letters.contains(&cs[i + 1]))
            .map(|i| cs[i + 1])
            .or_else(|| {
                text.lines()
                    .last()
                    .and_then(|l| bare_letter(l, &self.letters))
            })
    }
}

impl AnswerVerifier for ChoiceVerifier {
    fn pure(&self) -> bool {
        true
    }

    fn name(&self) -> &'static str {
        "choice"
    }

    fn verify(&self, item: &Item) -> Verdict {
        let Some(gold) = bare_letter(&item.gold, &self.letters) else {
            return Verdict::wrong(
                None,
                format!("gold answer `{}` is not a choice letter", item.gold),
            );
        };
        match self.extract(&item.prediction) {
            None => Verdict::wrong(None, "no choice letter in the prediction"),
            Some(c) if c == gold => Verdict::correct(Some(c.to_string())),
            Some(c) => Verdict::wrong(Some(c.to_string()), "a different choice"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok(v: &dyn AnswerVerifier, gold: &str, pred: &str) -> bool {
        v.verify(&Item::new(gold, pred)).correct
    }

    #[test]
    fn exact_options() {
        let d = ExactVerifier::default();
        assert!(ok(&d, "New  York", " New York\n"));
        assert!(!ok(&d, "new york", "New York"));
        let ci = ExactVerifier::from_options(&[("case".into(), "insensitive".into())]).unwrap();
        assert!(ok(&ci, "new york", "New York"));
        let ex = ExactVerifier::from_options(&[("whitespace".into(), "exact".into())]).unwrap();
        assert!(!ok(&ex, "a", "a "));
        let rm = ExactVerifier::from_options(&[("whitespace".into(), "remove".into())]).unwrap();
        assert!(ok(&rm, "x+1", "x + 1"));
        assert!(ExactVerifier::from_options(&[("case".into(), "maybe".into())]).is_err());
        let e = ExactVerifier::from_options(&[("cse".into(), "x".into())]).unwrap_err();
        assert!(e
            .to_string()
            .contains("unknown option `cse`; valid options: case, whitespace"));
    }

    #[test]
    fn numbers_in_every_written_form() {
        for (s, v) in [
            ("42", 42.0),
            ("-7", -7.0),
            ("1,234,567", 1234567.0),
            ("0.5", 0.5),
            (".5", 0.5),
            ("3/4", 0.75),
            ("-3/4", -0.75),
            ("1.5e-3", 0.0015),
            ("2E3", 2000.0),
            ("1.5×10^3", 1500.0),
            ("1.5 \\times 10^{-3}", 0.0015),
            ("$12", 12.0),
            ("50%", 50.0),
        ] {
            assert_eq!(parse_number(s, false), Some(v), "{s}");
        }
        assert_eq!(parse_number("50%", true), Some(0.5));
        for bad in [
            "", "abc", "1/0", "1,23", "12,3456", "--1", "1.2.3", "inf", "NaN",
        ] {
            assert_eq!(parse_number(bad, false), None, "{bad}");
        }
    }

    #[test]
    fn numeric_extracts_the_last_number_and_compares_with_tolerance() {
        let v = NumericVerifier::default();
        assert!(ok(
            &v,
            "0.75",
            "First 1 + 2 = 3, then 3/4. So the answer is 3/4."
        ));
        assert!(ok(&v, "1234", "Total: 1,234."));
        assert!(!ok(&v, "12", "It is 12, no wait, 13"));
        assert!(!ok(&v, "12", "no idea"));
        assert!(ok(&v, "3.14159265", "3.141592650001"));
        let r = v.verify(&Item::new("x", "1"));
        assert!(
            !r.correct
                && r.reason
                    .unwrap()
                    .contains("gold answer `x` is not a number")
        );
        let whole = NumericVerifier::from_options(&[("extract".into(), "whole".into())]).unwrap();
        assert!(!ok(&whole, "3", "the answer is 3"));
        let loose = NumericVerifier::from_options(&[("rel_tol".into(), "0.01".into())]).unwrap();
        assert!(ok(&loose, "100", "100.9"));
        assert!(NumericVerifier::from_options(&[("rel_tol".into(), "-1".into())]).is_err());
    }

    #[test]
    fn choice_letters() {
        let v = ChoiceVerifier::default();
        assert!(ok(&v, "B", "(B)"));
        assert!(ok(
            &v,
            "(c)",
            "Let me think. Option A is wrong. The answer is (C)."
        ));
        assert!(ok(&v, "D", "Answer: D"));
        assert!(ok(&v, "A", "A and B fail, so we pick (A) after all"));
        assert!(!ok(&v, "A", "The answer is B."));
        assert!(!ok(&v, "A", "I cannot decide."));
        let abcd = ChoiceVerifier::from_options(&[("letters".into(), "ABCD".into())]).unwrap();
        assert!(!ok(&abcd, "E", "E"));
        assert!(ChoiceVerifier::from_options(&[("letters".into(), "12".into())]).is_err());
    }

    #[test]
    fn numbers_too_large_for_f64_are_not_numbers() {
        // Found by the verify_simple fuzz target: `1\times10^033000` parsed as infinity, so
        // such a gold answer matched nothing, not even itself, and `0*10^400` was NaN.
        for s in [
            "1\\times10^033000",
            "1×10^400",
            "0*10^400",
            "1e308/1e-308",
            "-1e308/1e-308",
            "9e307*10^1",
        ] {
            assert_eq!(parse_number(s, false), None, "{s}");
            assert_eq!(parse_number(s, true), None, "{s}");
        }
        assert_eq!(parse_number("1×10^-400", false), Some(0.0));
        assert_eq!(parse_number("1.5×10^3", false), Some(1500.0));
        let v = NumericVerifier::default();
        assert!(!v.verify(&Item::new("1×10^400", "1×10^500")).correct);
        assert!(v.verify(&Item::new("1×10^300", "it is 1e300")).correct);
    }

    proptest! {
        #[test]
        fn never_panics(gold in ".{0,30}", pred in ".{0,200}") {
            for v in [
                &ExactVerifier::default() as &dyn AnswerVerifier,
                &NumericVerifier::default(),
                &ChoiceVerifier::default(),
            ] {
                let _ = v.verify(&Item::new(gold.clone(), pred.clone()));
            }
        }

        #[test]
        fn integers_round_trip(n in -1_000_000_000i64..1_000_000_000) {
            prop_assert_eq!(parse_number(&n.to_string(), false), Some(n as f64));
            let v = NumericVerifier::default();
            let pred = format!("so it is {}.", n);
            prop_assert!(v.verify(&Item::new(n.to_string(), pred)).correct);
        }
    }
}
