//! Unit tests. Every expected verdict here is math-verify 0.9.0's on the same pair (checked
//! with `verify(parse("$gold$"), parse(prediction))`), including its surprising ones.

use super::value::{Node, Num};
use super::*;
use proptest::prelude::*;

fn ok(gold: &str, pred: &str) -> bool {
    MathVerifier::default()
        .verify(&Item::new(gold, pred))
        .correct
}

fn extracted(pred: &str) -> Option<String> {
    parse_answer(pred).text
}

#[test]
fn options_are_checked() {
    assert!(MathVerifier::from_options(&[]).is_ok());
    assert!(MathVerifier::from_options(&[("x".into(), "1".into())]).is_err());
}

#[test]
fn extraction_priorities() {
    // boxed beats a later plain number
    assert_eq!(
        extracted("so $\\boxed{5}$. Check: 3 + 4 = 7."),
        Some("5".into())
    );
    // boxes close together, or separated by a short text with a comma, are one answer
    // (math-verify: {3, 4})
    assert_eq!(
        extracted(
            "First \\boxed{3}. Wait, I made an arithmetic error above, redoing it gives \\boxed{4}"
        ),
        Some("3,4".into())
    );
    // the last boxed wins when boxes are far apart
    assert_eq!(
        extracted("First \\boxed{3}.\n\nWait, I made an arithmetic error above. Redoing the last step carefully the value is \\boxed{4}"),
        Some("4".into())
    );
    // Minerva format
    assert_eq!(
        extracted("Final Answer: The final answer is $\\frac{1}{2}$. I hope it is correct."),
        Some("\\frac{1}{2}".into())
    );
    // "answer" anchors before plain numbers
    assert_eq!(
        extracted("The answer is 12. We used 3 and 4."),
        Some("12".into())
    );
    // the last number without anchors
    assert_eq!(
        extracted("We have 3 apples and 12 pears"),
        Some("12".into())
    );
    // thousands separators
    assert_eq!(
        extracted("the answer is 12,000 dollars"),
        Some("12000".into())
    );
    // nothing
    assert_eq!(extracted("I cannot tell."), None);
    assert!(!ok("5", "I cannot tell."));
}

#[test]
fn numbers() {
    assert!(ok("42", "The answer is $\\boxed{42}$."));
    assert!(ok("42", "\\boxed{42.0}"));
    assert!(!ok("42", "\\boxed{43}"));
    assert!(ok("-7", "so the answer is -7."));
    assert!(!ok("-7", "so the answer is 7."));
    assert!(ok("12,000", "the answer is 12000."));
    assert!(ok("12000", "the answer is $12{,}000$."));
    assert!(ok("3.75", "\\boxed{\\frac{15}{4}}"));
    assert!(ok("3.75", "\\boxed{3.750}"));
    assert!(ok("0.1", "\\boxed{.1}"));
    assert!(ok("3.2 \\times 10^{5}", "the answer is 320000"));
    // float rounding to 6 decimals
    assert!(ok("\\frac{1}{3}", "\\boxed{0.333333}"));
    assert!(!ok("\\frac{1}{3}", "\\boxed{0.33}"));
    assert!(ok("\\frac{2}{3}", "\\boxed{0.6666667}"));
    assert!(!ok("\\frac{2}{3}", "\\boxed{0.666666}"));
    // sympy's float error in 8.8 * 10^5 is not zero
    assert!(!ok("8.8 \\times 10^{5}", "$\\boxed{880,000}$"));
}

#[test]
fn fractions_and_mixed_numbers() {
    assert!(ok("\\frac{3}{4}", "\\boxed{\\dfrac{3}{4}}"));
    assert!(ok("\\frac{3}{4}", "\\boxed{\\frac34}"));
    assert!(ok("\\frac{3}{4}", "the answer is 3/4"));
    assert!(ok("\\frac{3}{4}", "\\boxed{\\frac{6}{8}}"));
    assert!(ok("\\frac{3}{4}", "\\boxed{0.75}"));
    assert!(!ok("\\frac{3}{4}", "\\boxed{\\frac{4}{3}}"));
    assert!(ok("2\\frac{1}{2}", "\\boxed{\\frac52}"));
    assert!(ok("2\\frac{1}{2}", "\\boxed{2.5}"));
    assert!(ok("-\\frac{3}{4}", "\\boxed{\\frac{3}{-4}}"));
}

#[test]
fn roots_pi_and_constants() {
    assert!(ok("3\\sqrt{2}", "\\boxed{\\sqrt{18}}"));
    assert!(ok("3\\sqrt{2}", "so \\boxed{4.242641}"));
    assert!(!ok("3\\sqrt{2}", "\\boxed{2\\sqrt{3}}"));
    assert!(!ok("\\sqrt{3}", "\\boxed{1.73205}"));
    assert!(ok("\\frac{\\sqrt{3}}{2}", "\\boxed{\\frac{1}{2}\\sqrt{3}}"));
    assert!(ok("2\\pi", "\\boxed{6.283185}"));
    assert!(ok("\\frac{\\pi}{3}", "\\boxed{\\pi/3}"));
    assert!(!ok("\\frac{\\pi}{3}", "\\boxed{\\frac{\\pi}{6}}"));
    assert!(ok("e^{2}", "\\boxed{e^2}"));
}

#[test]
fn percentages() {
    // math-verify: 25% equals 25 (integers ignore the percent) and 0.25, but not 25.0
    assert!(ok("25\\%", "The answer is 25."));
    assert!(ok("25\\%", "The answer is $0.25$."));
    assert!(ok("\\frac{1}{4}", "$\\boxed{25\\%}$"));
    assert!(!ok("25\\%", "\\boxed{25.0}"));
    assert!(!ok("25", "$\\boxed{0.25}$"));
    assert!(ok("50\\%", "the answer is 50 percent"));
}

#[test]
fn sets_intervals_tuples() {
    assert!(ok("\\{1,2,3\\}", "so \\boxed{3,2,1}"));
    assert!(ok("\\{1,2,3\\}", "so \\boxed{(3,2,1)}"));
    assert!(!ok("\\{1,2,3\\}", "so \\boxed{\\{1,2\\}}"));
    assert!(ok("[0, 1)", "so \\boxed{[0,1)}"));
    assert!(!ok("[0, 1)", "so \\boxed{[0,1]}"));
    assert!(ok("(-\\infty, 3]", "\\boxed{\\left(-\\infty, 3\\right]}"));
    // an open interval and a pair
    assert!(ok("(1, 2)", "so \\boxed{1, 2}"));
    assert!(!ok("(1, 2)", "so \\boxed{2, 1}"));
    assert!(ok("(3, -4)", "\\boxed{(3,-4)}"));
    assert!(!ok("(3, -4)", "\\boxed{(-4,3)}"));
    assert!(ok("-5, 2", "the answer is $x = -5$ or $x = 2$"));
}

#[test]
fn algebra_and_equations() {
    assert!(ok("x^2+2x+1", "so \\boxed{(x+1)^2}"));
    assert!(!ok("x^2+2x+1", "so \\boxed{x^2+1}"));
    assert!(ok("\\frac{x+4}{x-1}", "the answer is $1 + \\frac{5}{x-1}$"));
    assert!(ok("9x^{2}y", "\\boxed{9yx^2}"));
    assert!(!ok("x+1", "\\boxed{y+1}"));
    assert!(ok("x = 3", "so \\boxed{3}"));
    assert!(ok("3", "so \\boxed{x=3}"));
    assert!(ok("y = 2x+1", "so \\boxed{y=1+2x}"));
    assert!(!ok("y = 2x+1", "so \\boxed{y=2x-1}"));
    assert!(ok("x > 4", "\\boxed{4 < x}"));
    assert!(ok("x \\geq 2", "\\boxed{[2, \\infty)}"));
    assert!(!ok("x > 4", "\\boxed{x < 4}"));
}

#[test]
fn text_units_degrees_choices() {
    assert!(ok(
        "\\text{Monday}",
        "The answer is $\\boxed{\\text{monday}}$"
    ));
    assert!(ok("\\text{Monday}", "The answer is $\\boxed{Monday}$"));
    assert!(!ok(
        "\\text{Monday}",
        "The answer is $\\boxed{\\text{Sunday}}$"
    ));
    assert!(ok("B", "The answer is $\\boxed{B}$"));
    assert!(ok("\\text{(B)}", "The answer is $\\boxed{(B)}$"));
    // a bare letter outside math mode is not extracted by math-verify
    assert!(!ok("B", "The answer is (B)."));
    assert!(ok("50", "\\boxed{50 \\text{ cm}}"));
    assert!(ok("50", "\\boxed{\\$50}"));
    assert!(ok("30^\\circ", "the answer is $30$"));
    assert!(ok("30", "the answer is $30^{\\circ}$"));
    // latex2sympy cannot read the degree sign, so the boxed answer is unusable
    assert!(!ok("75", "The final answer is \\boxed{75°}"));
}

#[test]
fn matrices() {
    let m = "\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}";
    assert!(ok(
        m,
        &format!("so $\\boxed{{{}}}$", m.replace("pmatrix", "bmatrix"))
    ));
    assert!(!ok(
        m,
        "so $\\boxed{\\begin{pmatrix} 1 & 2 \\\\ 3 & 5 \\end{pmatrix}}$"
    ));
}

#[test]
fn parsed_kinds_follow_sympy() {
    let v = |s: &str| parse_answer(&wrap_gold(s)).value;
    assert_eq!(v("\\frac{6}{8}"), Some(Node::Num(Num::Rat(3, 4))));
    assert_eq!(v("-3.5"), Some(Node::Num(Num::Float(-3.5))));
    assert_eq!(v("12,000"), Some(Node::Num(Num::Rat(12000, 1))));
    assert!(matches!(v("1,2"), Some(Node::Set(_))));
    assert!(matches!(v("(2,1)"), Some(Node::Tuple(_))));
    assert!(matches!(
        v("(1,2)"),
        Some(Node::Interval {
            lopen: true,
            ropen: true,
            ..
        })
    ));
}

#[test]
fn verdicts_carry_the_answer_and_a_reason() {
    let v = MathVerifier::default().verify(&Item::new("5", "So the answer is $\\boxed{6}$."));
    assert!(!v.correct);
    assert_eq!(v.extracted.as_deref(), Some("6"));
    assert!(v.reason.is_some());
    let v = MathVerifier::default().verify(&Item::new("5", "no idea"));
    assert_eq!(v.reason.as_deref(), Some("no answer found"));
}

#[test]
fn long_and_nested_inputs_are_bounded() {
    let deep = format!(
        "$\\boxed{{{}1{}}}$",
        "\\frac{(".repeat(500),
        ")}{2}".repeat(500)
    );
    let _ = MathVerifier::default().verify(&Item::new("1", deep));
    let long = "1 + ".repeat(50_000);
    let _ = MathVerifier::default().verify(&Item::new("1", long));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn never_panics_on_arbitrary_strings(gold in ".{0,40}", pred in ".{0,200}") {
        let _ = MathVerifier::default().verify(&Item::new(gold, pred));
    }

    #[test]
    fn never_panics_on_latexish_strings(
        gold in "[0-9x,.=%(){}\\[\\]^_\\-+/ ]{0,20}",
        pred in proptest::collection::vec(
            prop_oneof![
                Just("\\frac".to_string()), Just("\\boxed{".to_string()), Just("\\sqrt".to_string()),
                Just("\\{".to_string()), Just("\\}".to_string()), Just("\\left(".to_string()),
                Just("\\right)".to_string()), Just("$".to_string()), Just("\\%".to_string()),
                Just("\\text{".to_string()), Just("answer".to_string()), Just("final answer is ".to_string()),
                Just("\\pi".to_string()), Just("\\infty".to_string()), Just("^\\circ".to_string()),
                "[0-9x,.=%(){}\\[\\]^_\\-+/ ]{1,4}",
            ],
            0..40,
        ),
    ) {
        let pred: String = pred.concat();
        let _ = MathVerifier::default().verify(&Item::new(gold.clone(), pred.clone()));
        let _ = MathVerifier::default().verify(&Item::new(pred, gold));
    }

    #[test]
    fn an_answer_matches_itself_when_boxed(n in -100000i64..100000, d in 1i64..1000) {
        let gold = format!("\\frac{{{n}}}{{{d}}}");
        let pred = format!("We compute things. The answer is $\\boxed{{\\frac{{{n}}}{{{d}}}}}$.");
        prop_assert!(MathVerifier::default().verify(&Item::new(gold, pred)).correct);
    }
}

/// Regression: `2**2**...**2` (pyexpr: `**` and unary `+` recursed without counting depth)
/// and `$2^2^...^2$` (latex: postfix `^`, `!`, `%` built a tree thousands of levels deep
/// that the comparison then walked recursively) overflowed the stack of a rayon worker and
/// aborted the whole process. Every such input now stops at the parsers' depth limits; the
/// verdicts run here on a 1 MiB stack, half of what rayon's workers get.
#[test]
fn deep_inputs_do_not_overflow_a_small_stack() {
    let inputs: Vec<String> = vec![
        format!("{}2", "2**".repeat(6_000)),
        format!("{}1", "+".repeat(19_000)),
        format!("{}1", "-+".repeat(9_000)),
        format!("${}2$", "2^".repeat(9_000)),
        format!("$2^{}1$", "-".repeat(19_000)),
        format!("$x{}$", "!".repeat(19_000)),
        format!("$2{}$", "\\%".repeat(9_000)),
        format!("${}1$", "+".repeat(19_000)),
        format!("${}1$", "-".repeat(19_000)),
        format!("${}1{}$", "(".repeat(9_000), ")".repeat(9_000)),
        format!("${}1{}$", "{".repeat(9_000), "}".repeat(9_000)),
        format!(
            "\\boxed{{{}1{}}}",
            "\\boxed{".repeat(3_000),
            "}".repeat(3_000)
        ),
        format!("${}$", "\\frac{1}".repeat(2_500)),
        format!("${}x", "\\sqrt".repeat(3_000)),
        format!("the answer is {}1", "(".repeat(9_000)),
    ];
    for s in inputs {
        let head: String = s.chars().take(12).collect();
        std::thread::Builder::new()
            .stack_size(1 << 20)
            .spawn(move || {
                let v = MathVerifier::default();
                let _ = v.verify(&Item::new(s.clone(), s.clone()));
                let _ = v.verify(&Item::new("2", s));
            })
            .unwrap()
            .join()
            .unwrap_or_else(|_| panic!("{head}..."));
    }
    // Nesting within the limits still parses.
    // Nesting within the limits still parses (as before the limits were added).
    assert!(ok("16", "$2^{2^{2}}$"));
    assert!(ok("4", "$(((((2+2)))))$"));
    assert!(ok("8", "the answer is 2**3"));
    assert!(ok("-1", "$---1$"));
}

/// Regression: plain numbers and expressions were matched by trying every end of every run
/// from every start, so a verdict was quadratic in the input (found by timing the
/// `verify_math` fuzz corpus: 20 000 digits took 0.36 s, `1 1 1 ...` 0.8 s, `1 000 000 ...`
/// 0.4 s; normal answers take microseconds). Runs are now matched up to 1000 characters,
/// as a bounded regex would, and these take milliseconds.
#[test]
fn long_runs_of_digits_and_operators_stay_linear() {
    // The bound is visible: a 1500-digit number is read as its first 1000 digits.
    assert_eq!(extracted(&"1".repeat(1_500)).map(|t| t.len()), Some(1_000));
    assert_eq!(extracted(&"7".repeat(999)), Some("7".repeat(999)));
    let inputs = [
        "1".repeat(20_000),
        "1 ".repeat(10_000),
        format!("1{}", " 000".repeat(5_000)),
        format!("1{}", ",000".repeat(5_000)),
        format!("{}.{}", "1".repeat(10_000), "2".repeat(9_999)),
        format!(".{}", "5".repeat(19_999)),
        "1+".repeat(10_000),
        "-1".repeat(10_000),
        "(1".repeat(10_000),
    ];
    let v = MathVerifier::default();
    let t = std::time::Instant::now();
    for s in &inputs {
        let _ = v.verify(&Item::new("1", s.as_str()));
        let _ = v.verify(&Item::new(s.as_str(), "1"));
    }
    // Before: over 3.5 s in release; now about 0.3 s. The bound leaves room for a slow or
    // busy machine and for unoptimised builds.
    let took = t.elapsed();
    let limit = if cfg!(debug_assertions) { 30.0 } else { 3.0 };
    assert!(took.as_secs_f64() < limit, "{took:?}");
}
