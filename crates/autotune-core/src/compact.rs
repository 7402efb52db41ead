//! How the journal writes its two bulky fields compactly, and reads them back in either form.
//!
//! - Prompt ids as ranges: `"0-32,40,45-50"` (a run draws its prompts in order, so a batch's
//!   ids are mostly consecutive). Older journals wrote a list, `[0,1,2,...]`; both are read.
//! - Chains of thought as `"deflate:BASE64"`: per trace the step count, the answer length and
//!   every token as LEB128 varints, the whole batch deflated. Older journals wrote a list of
//!   `{"steps":[...],"answer_len":n}`; both are read.
//!
//! On the demo (5 seeds of every curriculum on halfspace-cot) the teacher records shrink from
//! 14.0 MB to 1.5 MB; see `docs/results/journal-size.md`.

use std::io::{Read, Write};

use base64::Engine;
use serde::{Deserialize, Deserializer, Serializer};

use crate::{Token, Trace};

/// The prefix of packed traces.
const DEFLATE: &str = "deflate:";

/// The most bytes packed traces may inflate to (a journal line holds at most a few MB).
const MAX_INFLATED: u64 = 1 << 30;

/// Prompt ids as ranges of consecutive ids: `"0-32,40,45-50"`.
pub fn ids_to_string(ids: &[u64]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < ids.len() {
        let mut j = i;
        while j + 1 < ids.len() && ids[j].checked_add(1) == Some(ids[j + 1]) {
            j += 1;
        }
        if !out.is_empty() {
            out.push(',');
        }
        if j > i {
            out.push_str(&format!("{}-{}", ids[i], ids[j]));
        } else {
            out.push_str(&ids[i].to_string());
        }
        i = j + 1;
    }
    out
}

/// Prompt ids back from [`ids_to_string`]; `None` for anything else.
pub fn ids_from_str(s: &str) -> Option<Vec<u64>> {
    let mut out = Vec::new();
    if s.is_empty() {
        return Some(out);
    }
    for part in s.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u64, u64) = (a.parse().ok()?, b.parse().ok()?);
                if b <= a || b - a > MAX_INFLATED {
                    return None;
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().ok()?),
        }
    }
    Some(out)
}

fn put_varint(out: &mut Vec<u8>, mut x: u64) {
    loop {
        let byte = (x & 0x7f) as u8;
        x >>= 7;
        if x == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn get_varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut x: u64 = 0;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = bytes.split_first()?;
        *bytes = rest;
        x |= u64::from(b & 0x7f).checked_shl(shift)?;
        if b & 0x80 == 0 {
            return Some(x);
        }
    }
    None
}

/// Chains of thought packed: `"deflate:BASE64"`.
pub fn traces_to_string(traces: &[Trace]) -> String {
    let mut raw = Vec::new();
    for t in traces {
        put_varint(&mut raw, t.steps.len() as u64);
        put_varint(&mut raw, t.answer_len as u64);
        for &tok in &t.steps {
            put_varint(&mut raw, u64::from(tok));
        }
    }
    pack(&raw)
}

/// `raw` deflated and written as `"deflate:BASE64"`.
fn pack(raw: &[u8]) -> String {
    let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(raw).expect("deflating into memory");
    let packed = z.finish().expect("deflating into memory");
    format!(
        "{DEFLATE}{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(packed)
    )
}

/// Chains of thought back from [`traces_to_string`]; `None` for anything else (including a
/// trace whose answer is longer than it).
pub fn traces_from_str(s: &str) -> Option<Vec<Trace>> {
    let packed = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(s.strip_prefix(DEFLATE)?)
        .ok()?;
    let mut raw = Vec::new();
    flate2::read::DeflateDecoder::new(packed.as_slice())
        .take(MAX_INFLATED)
        .read_to_end(&mut raw)
        .ok()?;
    let mut bytes = raw.as_slice();
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let n = usize::try_from(get_varint(&mut bytes)?).ok()?;
        let answer_len = usize::try_from(get_varint(&mut bytes)?).ok()?;
        if answer_len > n || n > bytes.len() {
            return None;
        }
        let steps = (0..n)
            .map(|_| Token::try_from(get_varint(&mut bytes)?).ok())
            .collect::<Option<Vec<Token>>>()?;
        out.push(Trace { steps, answer_len });
    }
    Some(out)
}

/// A field written one way and read in either.
#[derive(Deserialize)]
#[serde(untagged)]
enum Either<T> {
    Text(String),
    List(T),
}

/// `#[serde(with = "ids")]`: prompt ids as ranges.
pub(crate) mod ids {
    use super::*;

    pub fn serialize<S: Serializer>(ids: &[u64], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&ids_to_string(ids))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
        match Either::<Vec<u64>>::deserialize(d)? {
            Either::List(v) => Ok(v),
            Either::Text(s) => ids_from_str(&s)
                .ok_or_else(|| serde::de::Error::custom(format!("malformed prompt ids `{s}`"))),
        }
    }
}

/// `#[serde(with = "traces")]`: chains of thought packed.
pub(crate) mod traces {
    use super::*;

    pub fn serialize<S: Serializer>(traces: &[Trace], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&traces_to_string(traces))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Trace>, D::Error> {
        match Either::<Vec<Trace>>::deserialize(d)? {
            Either::List(v) => Ok(v),
            Either::Text(s) => traces_from_str(&s).ok_or_else(|| {
                serde::de::Error::custom("malformed packed chains of thought (deflate:BASE64)")
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn trace() -> impl Strategy<Value = Trace> {
        (proptest::collection::vec(any::<u32>(), 0..40), 0usize..50)
            .prop_map(|(steps, a)| Trace::new(steps, a))
    }

    proptest! {
        #[test]
        fn ids_round_trip(ids in proptest::collection::vec(0u64..60, 0..80)) {
            prop_assert_eq!(ids_from_str(&ids_to_string(&ids)), Some(ids));
        }

        #[test]
        fn big_ids_round_trip(ids in proptest::collection::vec(any::<u64>(), 0..20)) {
            prop_assert_eq!(ids_from_str(&ids_to_string(&ids)), Some(ids));
        }

        #[test]
        fn traces_round_trip(traces in proptest::collection::vec(trace(), 0..20)) {
            prop_assert_eq!(traces_from_str(&traces_to_string(&traces)), Some(traces));
        }

        #[test]
        fn garbage_is_refused_not_misread(s in ".{0,40}") {
            // Whatever it returns, it never panics; text that is not ranges is refused.
            let _ = traces_from_str(&s);
            let _ = traces_from_str(&format!("{DEFLATE}{s}"));
            if s.chars().any(|c| !(c.is_ascii_digit() || c == ',' || c == '-')) {
                prop_assert_eq!(ids_from_str(&s), None);
            }
        }
    }

    #[test]
    fn ranges_read_as_written() {
        assert_eq!(ids_to_string(&[0, 1, 2, 3, 7, 9, 10, 4]), "0-3,7,9-10,4");
        assert_eq!(
            ids_from_str("0-3,7,9-10,4"),
            Some(vec![0, 1, 2, 3, 7, 9, 10, 4])
        );
        assert_eq!(ids_to_string(&[5, 5]), "5,5");
        assert_eq!(ids_from_str(""), Some(vec![]));
        for bad in ["3-1", "3-3", "1,,2", "a", "1-", "-1", "1-2-3"] {
            assert_eq!(ids_from_str(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_trace_whose_answer_is_longer_than_it_is_refused() {
        let mut raw = Vec::new();
        put_varint(&mut raw, 1);
        put_varint(&mut raw, 2);
        put_varint(&mut raw, 7);
        assert_eq!(traces_from_str(&pack(&raw)), None);
    }

    #[test]
    fn journal_records_of_earlier_versions_still_read() {
        use crate::Entry;
        let old = r#"{"op":"teach","ids":[4,5,6,9],"traces":[{"steps":[1,0,1],"answer_len":1},{"steps":[],"answer_len":0},{"steps":[7],"answer_len":1},{"steps":[0,0],"answer_len":2}],"secs":0.5}"#;
        let e: Entry = serde_json::from_str(old).unwrap();
        let Entry::Teach { ids, traces, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(ids, &[4, 5, 6, 9]);
        assert_eq!(traces[0], Trace::new(vec![1, 0, 1], 1));
        // Written compactly now, and read back the same.
        let new = serde_json::to_string(&e).unwrap();
        assert!(
            new.contains(r#""ids":"4-6,9""#) && new.contains("deflate:"),
            "{new}"
        );
        assert_eq!(serde_json::from_str::<Entry>(&new).unwrap(), e);
        let verify = r#"{"op":"verify","ids":[3,2],"verdicts":"10","secs":0.0}"#;
        let v: Entry = serde_json::from_str(verify).unwrap();
        assert!(serde_json::to_string(&v)
            .unwrap()
            .contains(r#""ids":"3,2""#));
    }

    #[test]
    fn binary_chains_of_thought_pack_small() {
        // 33 traces of 16 binary steps: the demo's teacher batches.
        let traces: Vec<Trace> = (0..33u32)
            .map(|i| Trace::new((0..16).map(|j| (i * 7 + j * 3) % 2).collect(), 8))
            .collect();
        let json = serde_json::to_string(&traces).unwrap();
        let packed = traces_to_string(&traces);
        assert!(
            packed.len() * 5 < json.len(),
            "{} vs {}",
            packed.len(),
            json.len()
        );
    }
}
