//! The output of a curriculum: one student, or an ensemble voting by (weighted) plurality.

use std::collections::HashMap;

use autotune_core::{Student, Token};

/// An ensemble member: a student fitted on one phase, and its vote weight.
pub struct Member {
    pub student: Box<dyn Student>,
    /// Vote weight `a_j` (1 for boost-by-majority).
    pub alpha: f64,
}

/// What a curriculum trains.
pub enum Model {
    /// One student that keeps training across phases (`None` before the first fit).
    Single(Option<Box<dyn Student>>),
    /// An ensemble `h_0..h_{i-1}` (improper, like boosting).
    Ensemble(Vec<Member>),
}

impl Model {
    /// Members whose answers count: the single student, or every ensemble member.
    pub fn members(&self) -> Vec<(&dyn Student, f64)> {
        match self {
            Model::Single(s) => s.iter().map(|s| (s.as_ref(), 1.0)).collect(),
            Model::Ensemble(m) => m.iter().map(|m| (m.student.as_ref(), m.alpha)).collect(),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Model::Single(s) => usize::from(s.is_some()),
            Model::Ensemble(m) => m.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Weighted plurality vote over final answers. Ties go to the answer that reached the top
/// weight first in member order, so the vote is deterministic. `None` for no voters.
pub fn plurality<'a>(answers: impl IntoIterator<Item = (&'a [Token], f64)>) -> Option<&'a [Token]> {
    let mut tally: HashMap<&[Token], f64> = HashMap::new();
    let mut best: Option<(&[Token], f64)> = None;
    for (ans, w) in answers {
        let t = tally.entry(ans).or_insert(0.0);
        *t += w;
        let t = *t;
        match best {
            Some((_, bw)) if t <= bw => {}
            _ => best = Some((ans, t)),
        }
    }
    best.map(|(a, _)| a)
}

/// Whether the plurality vote of `members` (verdict, vote weight, answer) is right: it is iff
/// it picked the answer of a member judged right. `None` for no voters.
pub fn vote_right(members: &[(bool, f64, Vec<Token>)]) -> Option<bool> {
    let vote = plurality(members.iter().map(|(_, a, ans)| (ans.as_slice(), *a)))?;
    Some(
        members
            .iter()
            .any(|(c, _, ans)| *c && ans.as_slice() == vote),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plurality_picks_the_heaviest_answer() {
        let a: &[Token] = &[1, 0];
        let b: &[Token] = &[0, 1];
        let c: &[Token] = &[1, 1];
        assert_eq!(plurality([(a, 1.0), (b, 1.0), (b, 1.0)]), Some(b));
        // Plurality, not majority: 2 of 5 can win.
        assert_eq!(
            plurality([(a, 1.0), (a, 1.0), (b, 1.0), (c, 1.0), (b, 0.5)]),
            Some(a)
        );
        // Weighted.
        assert_eq!(plurality([(a, 3.0), (b, 1.0), (b, 1.0)]), Some(a));
        // Ties: first to reach the top weight.
        assert_eq!(plurality([(a, 1.0), (b, 1.0)]), Some(a));
        assert_eq!(plurality(std::iter::empty()), None);
    }
}
