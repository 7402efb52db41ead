//! The run journal (`journal.jsonl`) on arbitrary bytes: reading it back never panics, every
//! record it keeps re-encodes to the bytes it was read from, streams are numbered without gaps,
//! and only the last line can be dropped as torn.
#![no_main]

use std::collections::HashMap;
use std::path::Path;

use autotune_experiment::parse_journal;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok((records, summary)) = parse_journal(Path::new("journal.jsonl"), data) else {
        return;
    };
    let mut next: HashMap<&str, u64> = HashMap::new();
    let mut start = 0u64;
    for r in &records {
        let want = next.entry(r.run.as_str()).or_insert(0);
        assert_eq!(r.seq, *want, "streams are numbered without gaps");
        *want += 1;
        assert!(r.end > start && r.end <= data.len() as u64);
        assert_eq!(data[r.end as usize - 1], b'\n', "a kept record is a whole line");
        start = r.end;
    }
    match summary.dropped {
        // Only what follows the last kept record may be dropped.
        Some((offset, _)) => assert_eq!(offset, start),
        None => assert_eq!(start, data.len() as u64, "every byte is in a kept record"),
    }
    assert_eq!(summary.records, records.len() as u64);
});
