//! Plain answers that math-verify does not read as their authors mean them, decided on their
//! own terms before the math-verify path:
//!
//! * **numbers in scientific notation** (`4.58e-09`, `1.5E+10`): math-verify's parsers read
//!   the `e` as Euler's number or stop at it, so the gold `4.58e-09` came out as `4.58`. Here
//!   the gold and the prediction's last number are compared as reals, with a relative
//!   tolerance of 1e-6 (plain decimals such as `0.0025` count). The same holds when the gold
//!   is a plain decimal and the prediction's last number is in scientific notation;
//! * **clock times** (`05:15:50`, `7:05`): math-verify reads `:` as division, so `05:15:51`
//!   passed for `05:15:50`. Here the prediction's last time must have the same fields (hours
//!   without a leading zero count: `5:15:50` is `05:15:50`);
//! * **alphanumeric tokens with a digit after a letter** (`3a0`, `abc123`, `0x1f`): base-16
//!   numbers and identifiers, which math-verify reads as products of symbols or cuts at the
//!   first letter. Here the prediction's last alphanumeric token must be the same, ignoring
//!   case (`3A0` is `3a0`). Tokens like `2x` (digits, then letters) stay with the math path:
//!   they are algebra;
//! * **text answers** (`off`, `undetermined`, `#A #B`, `6 6 0 0`, `4dc`):
//!   answers with a word of two or more letters, `#`, or several space-separated parts (no
//!   commas, brackets or comparisons: those are tuples and intervals), and
//!   none of the characters of mathematics (`\ ^ _ { } = + * / $`) nor a function or constant
//!   name (`pi`, `sqrt`, `sin`, `log`, `inf`, ...). Reasoning-gym's families answer this way;
//!   math-verify finds no answer in "so the answer is off." (it reads numbers and LaTeX), and
//!   cut `4dc` to `4`. Here the prediction's answer region must be the gold as text, ignoring
//!   case, surrounding quotes and a final period, with runs of spaces as one and no spaces
//!   around `, ; : ( ) [ ]`.
//!
//! The prediction's answer region is the last `\boxed{...}`, else what follows the last
//! "answer is" or "answer:", else the whole text; its last token of the gold's shape is the
//! answer.

use crate::Verdict;

/// A gold answer that this module decides.
#[derive(Clone, Debug, PartialEq)]
enum Plain {
    /// A real in scientific notation.
    Sci(f64),
    /// A plain decimal (decided here only against a prediction in scientific notation).
    Decimal(f64),
    /// A clock time: its fields, the last one possibly with a fraction.
    Time(Vec<f64>),
    /// An alphanumeric token, lower-cased.
    Token(String),
    /// A text answer, normalised (see [`normalize_text`]).
    Text(String),
}

/// Decides `prediction` against `gold` when the gold is a plain answer of a shape this module
/// knows, and returns `None` (the math-verify path decides) otherwise.
pub(crate) fn verify(gold: &str, prediction: &str) -> Option<Verdict> {
    let kind = classify(gold)?;
    let region = answer_region(prediction);
    match kind {
        Plain::Sci(g) => Some(match last_number(region) {
            Some((text, p)) if close(g, p) => Verdict::correct(Some(text)),
            Some((text, _)) => Verdict::wrong(
                Some(text),
                "not equal to the gold answer (a number in scientific notation, relative tolerance 1e-6)",
            ),
            None => Verdict::wrong(None, "no number found"),
        }),
        Plain::Decimal(g) => match last_number(region) {
            Some((text, p)) if is_sci(&text) => Some(if close(g, p) {
                Verdict::correct(Some(text))
            } else {
                Verdict::wrong(
                    Some(text),
                    "not equal to the gold answer (compared as reals, relative tolerance 1e-6)",
                )
            }),
            _ => None,
        },
        Plain::Time(g) => Some(match last_token(region, is_time_char, parse_time) {
            Some((text, p)) if p == g => Verdict::correct(Some(text)),
            Some((text, _)) => Verdict::wrong(
                Some(text),
                "not the gold's time (clock times are compared field by field)",
            ),
            None => Verdict::wrong(None, "no clock time found"),
        }),
        Plain::Token(g) => Some(
            match last_token(region, |c| c.is_ascii_alphanumeric(), |t| {
                Some(t.to_ascii_lowercase())
            }) {
                Some((text, p)) if p == g => Verdict::correct(Some(text)),
                Some((text, _)) => Verdict::wrong(
                    Some(text),
                    "not the gold's token (alphanumeric answers are compared as text, ignoring case)",
                ),
                None => Verdict::wrong(None, "no answer found"),
            },
        ),
        Plain::Text(g) => {
            let p = normalize_text(region);
            Some(if p == g {
                Verdict::correct(Some(p))
            } else if p.is_empty() {
                Verdict::wrong(None, "no answer found")
            } else {
                Verdict::wrong(
                    Some(p),
                    "not the gold's text (text answers are compared ignoring case and spacing)",
                )
            })
        }
    }
}

/// Names that make a gold mathematics, not text.
const MATH_WORDS: &[&str] = &[
    "pi", "inf", "infty", "infinity", "oo", "sqrt", "sin", "cos", "tan", "cot", "sec", "csc",
    "arcsin", "arccos", "arctan", "asin", "acos", "atan", "sinh", "cosh", "tanh", "log", "ln",
    "exp", "mod", "frac", "cdot", "times",
];

/// A text answer: no character of mathematics, no function or constant name, and a word of
/// two or more letters, a `#`, or several space-separated parts.
fn is_text(s: &str) -> bool {
    if s.chars().any(|c| {
        matches!(
            c,
            '\\' | '^' | '_' | '{' | '}' | '=' | '+' | '*' | '/' | '$'
        )
    }) {
        return false;
    }
    let words: Vec<String> = s
        .split(|c: char| !c.is_alphabetic())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    if words.iter().any(|w| MATH_WORDS.contains(&w.as_str())) {
        return false;
    }
    // Several parts, as in `6 6 0 0`; with commas, brackets or comparisons they are tuples,
    // sets, intervals or inequalities, and mathematics.
    let parts =
        s.split_whitespace().count() >= 2 && !s.contains([',', '(', ')', '[', ']', '<', '>', '|']);
    words.iter().any(|w| w.chars().count() >= 2) || s.contains('#') || parts
}

/// Text as compared: trimmed, without surrounding quotes or backticks and a final period,
/// lower-cased, runs of whitespace as one space, no space next to `, ; : ( ) [ ]`.
fn normalize_text(s: &str) -> String {
    let s = s.trim().trim_end_matches('.').trim();
    let s = s.trim_matches(|c| matches!(c, '"' | '\'' | '`')).trim();
    let lower = s.to_lowercase();
    let collapsed = lower.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out = String::with_capacity(collapsed.len());
    let tight = |c: char| matches!(c, ',' | ';' | ':' | '(' | ')' | '[' | ']');
    let chars: Vec<char> = collapsed.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c == ' ' && (i > 0 && tight(chars[i - 1]) || chars.get(i + 1).is_some_and(|&n| tight(n)))
        {
            continue;
        }
        out.push(c);
    }
    out
}

fn classify(gold: &str) -> Option<Plain> {
    let g = gold.trim();
    let g = g
        .strip_prefix('$')
        .and_then(|s| s.strip_suffix('$'))
        .unwrap_or(g)
        .trim();
    if g.is_empty() || g.len() > 64 {
        return None;
    }
    if is_sci(g) {
        return g.parse().ok().map(Plain::Sci);
    }
    if is_decimal(g) {
        return g.parse().ok().map(Plain::Decimal);
    }
    if let Some(t) = parse_time(g) {
        return Some(Plain::Time(t));
    }
    if is_token(g) {
        return Some(Plain::Token(g.to_ascii_lowercase()));
    }
    if is_text(g) {
        return Some(Plain::Text(normalize_text(g)));
    }
    None
}

/// `[+-]digits[.digits]`, `[+-]digits.` or `[+-].digits`.
fn is_decimal(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |t: &str| t.chars().all(|c| c.is_ascii_digit());
    digits(int) && digits(frac) && !(int.is_empty() && frac.is_empty())
}

/// A decimal mantissa, `e` or `E`, and a signed integer exponent of at most three digits
/// whose value is finite (`9061e50963740020` is a base-16 number, not a real).
fn is_sci(s: &str) -> bool {
    let Some(i) = s.find(['e', 'E']) else {
        return false;
    };
    let (mantissa, exp) = (&s[..i], &s[i + 1..]);
    let exp = exp.strip_prefix(['+', '-']).unwrap_or(exp);
    is_decimal(mantissa)
        && mantissa.chars().any(|c| c.is_ascii_digit())
        && (1..=3).contains(&exp.len())
        && exp.chars().all(|c| c.is_ascii_digit())
        && s.parse::<f64>().is_ok_and(f64::is_finite)
}

fn is_time_char(c: char) -> bool {
    c.is_ascii_digit() || c == ':' || c == '.'
}

/// `H:MM`, `HH:MM:SS` or `HH:MM:SS.fff`: hours of one or two digits, then two-digit fields.
fn parse_time(s: &str) -> Option<Vec<f64>> {
    let fields: Vec<&str> = s.split(':').collect();
    if !(2..=3).contains(&fields.len()) {
        return None;
    }
    let mut out = Vec::with_capacity(fields.len());
    for (i, f) in fields.iter().enumerate() {
        let last = i + 1 == fields.len();
        let (whole, frac) = match f.split_once('.') {
            Some((w, fr)) if last && !fr.is_empty() && fr.chars().all(|c| c.is_ascii_digit()) => {
                (w, Some(fr))
            }
            Some(_) => return None,
            None => (*f, None),
        };
        let ok_len = if i == 0 {
            (1..=2).contains(&whole.len())
        } else {
            whole.len() == 2
        };
        if !ok_len || !whole.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let v: f64 = match frac {
            Some(fr) => format!("{whole}.{fr}").parse().ok()?,
            None => whole.parse().ok()?,
        };
        out.push(v);
    }
    Some(out)
}

/// ASCII letters and digits with a digit somewhere after a letter (`3a0`, `abc123`, `0x1f`).
fn is_token(s: &str) -> bool {
    if !s.chars().all(|c| c.is_ascii_alphanumeric()) {
        return false;
    }
    let Some(first_letter) = s.find(|c: char| c.is_ascii_alphabetic()) else {
        return false;
    };
    s[first_letter..].chars().any(|c| c.is_ascii_digit())
}

fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-6 * a.abs().max(b.abs())
}

/// The part of a prediction that holds its answer: the last `\boxed{...}`, else what follows
/// the last "answer is" or "answer:", else all of it.
fn answer_region(prediction: &str) -> &str {
    if let Some(i) = prediction.rfind("\\boxed{") {
        let rest = &prediction[i + "\\boxed{".len()..];
        let mut depth = 1usize;
        for (j, c) in rest.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        return &rest[..j];
                    }
                }
                _ => {}
            }
        }
        return rest;
    }
    let lower = prediction.to_ascii_lowercase();
    let cut = ["answer is", "answer:"]
        .iter()
        .filter_map(|m| lower.rfind(m).map(|i| i + m.len()))
        .max();
    match cut {
        // ASCII lower-casing keeps byte offsets.
        Some(i) => &prediction[i..],
        None => prediction,
    }
}

/// The last maximal run of `allowed` characters (trailing dots trimmed) that `parse` accepts.
fn last_token<T>(
    region: &str,
    allowed: impl Fn(char) -> bool,
    parse: impl Fn(&str) -> Option<T>,
) -> Option<(String, T)> {
    region
        .split(|c: char| !allowed(c))
        .rev()
        .map(|t| t.trim_end_matches('.'))
        .filter(|t| !t.is_empty())
        .find_map(|t| parse(t).map(|v| (t.to_string(), v)))
}

/// The last number (decimal or scientific) of a region, with its text.
fn last_number(region: &str) -> Option<(String, f64)> {
    last_token(
        region,
        |c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'),
        |t| {
            let t = t.trim_start_matches('+');
            if is_sci(t) || is_decimal(t) {
                t.parse().ok()
            } else {
                None
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AnswerVerifier, Item, MathVerifier};
    use proptest::prelude::*;

    fn ok(gold: &str, pred: &str) -> bool {
        MathVerifier::default()
            .verify(&Item::new(gold, pred))
            .correct
    }

    #[test]
    fn text_answers_are_compared_as_text() {
        assert!(ok("off", "The light ends up off, so the answer is Off."));
        assert!(ok("#A #B", "so the answer is #A  #B"));
        assert!(ok("6 6 0 0", "\\boxed{6 6 0 0}"));
        assert!(ok(
            "You must come and see.",
            "the answer is \"you must come and see\"."
        ));
        assert!(ok("4dc", "so the answer is 4dc."));
        assert!(!ok("off", "so the answer is on."));
        assert!(!ok("6 6 0 0", "\\boxed{6 6 0 9}"));
        assert!(!ok("4dc", "so the answer is 4."));
        // Mathematics stays on the math path: tuples, inequalities, names of functions.
        assert!(classify("(2, 4)").is_none());
        assert!(classify("x < -4").is_none());
        assert!(classify("-5, 2").is_none());
        assert!(classify("2 pi").is_none());
        assert!(classify("\\text{off}").is_none());
    }

    #[test]
    fn scientific_notation_is_a_number() {
        assert!(ok("4.58e-09", "4.58e-09"));
        assert!(ok("4.58e-09", "The answer is 4.58e-9."));
        assert!(ok("4.58e-09", "so \\boxed{4.58E-9}"));
        assert!(!ok("4.58e-09", "4.58"));
        assert!(!ok("4.58e-09", "4.59e-09"));
        assert!(ok("2.5e-3", "0.0025"));
        assert!(ok("1.5E+10", "15000000000"));
        assert!(ok("1e5", "the answer is 100000"));
        // A decimal gold against a prediction in scientific notation.
        assert!(ok("15000000000", "The answer is 1.5e10"));
        assert!(!ok("15000000000", "The answer is 1.6e10"));
        // A decimal gold against a decimal prediction stays with the math-verify path.
        assert!(verify("3", "3").is_none());
    }

    #[test]
    fn clock_times_compare_field_by_field() {
        assert!(ok("05:15:50", "05:15:50"));
        assert!(ok("05:15:50", "It ends at 5:15:50."));
        assert!(!ok("05:15:50", "05:15:51"));
        assert!(!ok("05:15", "05:16"));
        assert!(!ok("05:15:50", "05:15"));
        assert!(ok("12:00:00.5", "answer: 12:00:00.5"));
        assert_eq!(classify("3:7"), None, "not a clock time: a ratio");
    }

    #[test]
    fn alphanumeric_tokens_compare_as_text() {
        assert!(ok("3a0", "3a0"));
        assert!(ok("3a0", "The answer is 3A0."));
        assert!(!ok("3a0", "3a1"));
        assert!(!ok("abc123", "abc124"));
        assert!(ok("0x1F", "\\boxed{0x1f}"));
        // Algebra stays with the math path.
        assert_eq!(classify("2x"), None);
        assert_eq!(classify("10n"), None);
    }

    #[test]
    fn other_golds_go_to_the_math_path() {
        for g in [
            "3",
            "\\frac{1}{2}",
            "x^2",
            "Lima",
            "[1, 2]",
            "-0.5",
            "1,000",
        ] {
            assert!(
                !matches!(
                    classify(g),
                    Some(Plain::Sci(_) | Plain::Time(_) | Plain::Token(_))
                ),
                "{g}"
            );
        }
    }

    proptest! {
        #[test]
        fn any_scientific_gold_passes_itself_and_fails_a_neighbour(m in 1.0f64..10.0, e in -30i32..30) {
            let x = m * 10f64.powi(e);
            let gold = format!("{x:e}");
            let same = format!("The answer is {x:E}.");
            let other = format!("The answer is {:e}.", x * (1.0 + 1e-3));
            prop_assert!(ok(&gold, &gold));
            prop_assert!(ok(&gold, &same));
            prop_assert!(!ok(&gold, &other));
        }

        #[test]
        fn any_time_gold_passes_itself_and_fails_the_next_second(h in 0u32..24, m in 0u32..60, s in 0u32..59) {
            let gold = format!("{h:02}:{m:02}:{s:02}");
            let same = format!("The answer is {h}:{m:02}:{s:02}.");
            let next = format!("{h:02}:{m:02}:{:02}", s + 1);
            prop_assert!(ok(&gold, &gold));
            prop_assert!(ok(&gold, &same));
            prop_assert!(!ok(&gold, &next));
        }

        #[test]
        fn any_hex_gold_passes_itself_in_any_case(v in 16u64..u64::MAX) {
            let gold = format!("{v:x}");
            prop_assume!(is_token(&gold));
            let upper = gold.to_ascii_uppercase();
            let other = format!("{:x}", v ^ 1);
            prop_assert!(ok(&gold, &upper));
            prop_assert!(!ok(&gold, &other));
        }
    }
}
