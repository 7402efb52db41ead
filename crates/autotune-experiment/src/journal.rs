//! `journal.jsonl`: the run directory's append-only record of every expensive result, and the
//! lock that keeps two processes off one run directory.
//!
//! One JSON object a line: the run's stream (`"strategy/eps/seed"`), the call's number in that
//! stream, the operation and its result (see [`autotune_core::Entry`]), and a CRC-32 of the
//! line before it:
//!
//! ```text
//! {"run":"autotune-cex/0.01/0","seq":4,"op":"teach","ids":[..],"traces":[..],"secs":0.01,"crc":"1c291ca3"}
//! ```
//!
//! A line is written with one `write` call; lines that cost something (teacher calls, remote
//! generations, checkpoints) are synced to disk before the run goes on. A killed process can
//! therefore leave at most its last line torn: [`FileJournal::resume`] drops it with a warning.
//! Anything else that does not check (a bad line before the last, a wrong checksum, a gap or
//! a repeat in a stream) is refused with the file and byte offset.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use autotune_core::{CoreError, Entry, Journal};
use serde::{Deserialize, Serialize};

use crate::ExperimentError;

pub const JOURNAL_FILE: &str = "journal.jsonl";
pub const LOCK_FILE: &str = "lock";
pub const CHECKPOINT_DIR: &str = "checkpoints";

/// The largest journal line read back (a teacher batch of long chains of thought fits easily).
pub const MAX_RECORD_BYTES: usize = 64 << 20;

/// A journal line without its checksum.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    run: String,
    seq: u64,
    #[serde(flatten)]
    entry: Entry,
}

/// `,"crc":"xxxxxxxx"}`: the end of every line.
const CRC_TAIL: usize = 18;

fn encode(run: &str, seq: u64, entry: &Entry) -> String {
    let rec = Record {
        run: run.to_string(),
        seq,
        entry: entry.clone(),
    };
    let body = serde_json::to_string(&rec).expect("journal records serialise");
    let crc = crc32fast::hash(body.as_bytes());
    format!("{},\"crc\":\"{crc:08x}\"}}\n", &body[..body.len() - 1])
}

/// One line (without its newline) back to its record; `Err` says what is wrong.
fn decode(line: &[u8]) -> Result<Record, String> {
    let n = line.len();
    if n < CRC_TAIL + 2 || !line.starts_with(b"{") {
        return Err("not a journal record".into());
    }
    let tail = &line[n - CRC_TAIL..];
    if !tail.starts_with(b",\"crc\":\"") || !tail.ends_with(b"\"}") {
        return Err("no checksum at the end of the record".into());
    }
    let hex = std::str::from_utf8(&tail[8..16]).map_err(|_| "checksum is not hex")?;
    let want = u32::from_str_radix(hex, 16).map_err(|_| "checksum is not hex")?;
    let mut body = line[..n - CRC_TAIL].to_vec();
    body.push(b'}');
    let got = crc32fast::hash(&body);
    if got != want {
        return Err(format!(
            "checksum mismatch (recorded {want:08x}, computed {got:08x})"
        ));
    }
    serde_json::from_slice(&body).map_err(|e| format!("bad record: {e}"))
}

fn io_err(path: &Path, what: &str, e: std::io::Error) -> ExperimentError {
    ExperimentError::Io {
        path: format!("{} ({what})", path.display()),
        error: e,
    }
}

/// What [`FileJournal::resume`] found.
#[derive(Clone, Debug, Default)]
pub struct JournalSummary {
    /// Records read back.
    pub records: u64,
    /// Of those, teacher calls (prompts).
    pub teacher_prompts: u64,
    /// A torn last record that was dropped: its byte offset and what was wrong.
    pub dropped: Option<(u64, String)>,
}

/// Reads one line (up to and without `\n`) into `buf`, keeping at most `MAX_RECORD_BYTES + 1`
/// bytes of it in memory. Returns the bytes the line takes in the file (newline included) and
/// whether it ended with a newline.
fn read_line(r: &mut impl BufRead, buf: &mut Vec<u8>) -> std::io::Result<(u64, bool)> {
    buf.clear();
    let mut taken = 0u64;
    loop {
        let chunk = r.fill_buf()?;
        if chunk.is_empty() {
            return Ok((taken, false));
        }
        let (n, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i, true),
            None => (chunk.len(), false),
        };
        let room = (MAX_RECORD_BYTES + 1).saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..n.min(room)]);
        let used = n + usize::from(done);
        r.consume(used);
        taken += used as u64;
        if done {
            return Ok((taken, true));
        }
    }
}

/// Checks a journal read from `r` (named `path` in errors): its records, and a torn last
/// record (dropped). Memory stays bounded by the records kept: an over-long line is skipped,
/// not read. Errors name the file and the byte offset.
pub fn parse_journal(
    path: &Path,
    mut r: impl BufRead,
) -> Result<(Vec<JournalRecord>, JournalSummary), ExperimentError> {
    let mut out = Vec::new();
    let mut summary = JournalSummary::default();
    let mut next_seq: HashMap<String, u64> = HashMap::new();
    let mut offset = 0u64;
    let mut line = Vec::new();
    loop {
        let (taken, complete) =
            read_line(&mut r, &mut line).map_err(|e| io_err(path, "reading", e))?;
        if taken == 0 {
            break;
        }
        let end = offset + taken;
        let last = r
            .fill_buf()
            .map_err(|e| io_err(path, "reading", e))?
            .is_empty();
        let parsed = if line.len() > MAX_RECORD_BYTES {
            Err(format!(
                "a record of more than the {MAX_RECORD_BYTES} bytes allowed"
            ))
        } else if !complete {
            Err("the record has no end (the process was stopped while writing it)".into())
        } else {
            decode(&line)
        };
        match parsed {
            Ok(rec) => {
                let want = next_seq.entry(rec.run.clone()).or_insert(0);
                if rec.seq != *want {
                    return Err(ExperimentError::RunDir(format!(
                        "{}: byte offset {offset}: record {} of run {} where record {} was expected: the journal is corrupt",
                        path.display(),
                        rec.seq,
                        rec.run,
                        want
                    )));
                }
                *want += 1;
                if let Entry::Teach { ids, .. } = &rec.entry {
                    summary.teacher_prompts += ids.len() as u64;
                }
                summary.records += 1;
                out.push(JournalRecord {
                    run: rec.run,
                    seq: rec.seq,
                    entry: rec.entry,
                    end,
                });
            }
            Err(what) if last => {
                summary.dropped = Some((offset, what));
                break;
            }
            Err(what) => {
                return Err(ExperimentError::RunDir(format!(
                    "{}: byte offset {offset}: {what}; the journal is corrupt before its last record (only a torn last record is dropped)",
                    path.display()
                )));
            }
        }
        offset = end;
    }
    Ok((out, summary))
}

/// A record read back, with the byte offset just after it.
pub struct JournalRecord {
    pub run: String,
    pub seq: u64,
    pub entry: Entry,
    pub end: u64,
}

/// The journal of a run directory, holding its lock while open.
pub struct FileJournal {
    path: PathBuf,
    checkpoints: PathBuf,
    file: Mutex<Appender>,
    recorded: Mutex<HashMap<(String, u64), Entry>>,
    replayed: AtomicU64,
    appended: AtomicU64,
    _lock: File,
}

/// The journal file and how much of it holds whole records.
struct Appender {
    file: File,
    /// Bytes of whole records (the file is cut back here after a failed write).
    len: u64,
    /// The first failed write: nothing more is appended after it.
    failed: Option<String>,
}

/// Takes the lock of run directory `dir` (held until the returned file is dropped, or the
/// process ends, killed or not).
pub fn lock_run_dir(dir: &Path) -> Result<File, ExperimentError> {
    let path = dir.join(LOCK_FILE);
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| io_err(&path, "opening the lock", e))?;
    match f.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = f.read_to_string(&mut holder);
            let holder = holder.trim();
            return Err(ExperimentError::RunDir(format!(
                "{} is in use by another autotune process{}: two processes must not write one run directory",
                dir.display(),
                if holder.is_empty() { String::new() } else { format!(" ({holder})") }
            )));
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io_err(&path, "locking", e)),
    }
    let me = format!("pid {}\n", std::process::id());
    f.set_len(0)
        .and_then(|_| f.seek(SeekFrom::Start(0)))
        .and_then(|_| f.write_all(me.as_bytes()))
        .map_err(|e| io_err(&path, "writing the lock", e))?;
    Ok(f)
}

impl FileJournal {
    /// Starts the journal of a new run in `dir` (locked). A journal with records there is
    /// refused: it holds results that were paid for (`autotune resume DIR` continues it).
    pub fn create(dir: &Path) -> Result<Self, ExperimentError> {
        let lock = lock_run_dir(dir)?;
        let path = dir.join(JOURNAL_FILE);
        if std::fs::metadata(&path).is_ok_and(|m| m.len() > 0) {
            return Err(ExperimentError::RunDir(format!(
                "{} already holds a run (its {JOURNAL_FILE} has results that were paid for): continue it with `autotune resume {}`, or choose another --out",
                dir.display(),
                dir.display()
            )));
        }
        let file = File::create(&path).map_err(|e| io_err(&path, "creating", e))?;
        Ok(Self::with(dir, path, file, 0, HashMap::new(), lock))
    }

    /// Opens the journal of `dir` (locked) to resume its run: checks it, drops a torn last
    /// record (truncating the file there) and keeps every record for replay.
    pub fn resume(dir: &Path) -> Result<(Self, JournalSummary), ExperimentError> {
        let lock = lock_run_dir(dir)?;
        let path = dir.join(JOURNAL_FILE);
        // A run killed before its journal existed had paid for nothing: start it empty.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io_err(&path, "opening", e))?;
        let size = file
            .metadata()
            .map_err(|e| io_err(&path, "reading", e))?
            .len();
        let (records, summary) = parse_journal(&path, std::io::BufReader::new(&file))?;
        let good = records.last().map_or(0, |r| r.end);
        if good < size {
            file.set_len(good)
                .and_then(|_| file.sync_all())
                .map_err(|e| io_err(&path, "dropping the torn last record", e))?;
        }
        file.seek(SeekFrom::End(0))
            .map_err(|e| io_err(&path, "seeking", e))?;
        let recorded = records
            .into_iter()
            .map(|r| ((r.run, r.seq), r.entry))
            .collect();
        Ok((Self::with(dir, path, file, good, recorded, lock), summary))
    }

    fn with(
        dir: &Path,
        path: PathBuf,
        file: File,
        len: u64,
        recorded: HashMap<(String, u64), Entry>,
        lock: File,
    ) -> Self {
        Self {
            path,
            checkpoints: dir.join(CHECKPOINT_DIR),
            file: Mutex::new(Appender {
                file,
                len,
                failed: None,
            }),
            recorded: Mutex::new(recorded),
            replayed: AtomicU64::new(0),
            appended: AtomicU64::new(0),
            _lock: lock,
        }
    }

    /// Records replayed so far.
    pub fn replayed(&self) -> u64 {
        self.replayed.load(Ordering::Relaxed)
    }

    /// Records appended so far.
    pub fn appended(&self) -> u64 {
        self.appended.load(Ordering::Relaxed)
    }

    /// Records read back that no run has replayed (after a finished resume: none, unless the
    /// run no longer follows its journal).
    pub fn unreplayed(&self) -> usize {
        self.recorded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Syncs every record to disk.
    pub fn sync(&self) -> Result<(), ExperimentError> {
        let f = self.file.lock().unwrap_or_else(|e| e.into_inner());
        f.file
            .sync_data()
            .map_err(|e| io_err(&self.path, "syncing", e))
    }
}

fn journal_err(path: &Path, what: &str, e: std::io::Error) -> CoreError {
    CoreError::Journal(format!("{}: {what}: {e}", path.display()))
}

impl Journal for FileJournal {
    fn take(&self, run: &str, seq: u64) -> Option<Entry> {
        let mut m = self.recorded.lock().unwrap_or_else(|e| e.into_inner());
        if m.is_empty() {
            return None;
        }
        let e = m.remove(&(run.to_string(), seq));
        if e.is_some() {
            self.replayed.fetch_add(1, Ordering::Relaxed);
        }
        e
    }

    fn append(&self, run: &str, seq: u64, entry: &Entry) -> autotune_core::Result<()> {
        let line = encode(run, seq, entry);
        let mut f = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = &f.failed {
            return Err(CoreError::Journal(format!(
                "{}: an earlier write failed ({e}); nothing more is journaled",
                self.path.display()
            )));
        }
        let res = f.file.write_all(line.as_bytes()).and_then(|_| {
            if entry.paid() {
                f.file.sync_data()
            } else {
                Ok(())
            }
        });
        if let Err(e) = res {
            // Cut a partly written record back off (best effort: a later resume would drop
            // it as torn anyway), and append nothing after it.
            let len = f.len;
            let _ = f.file.set_len(len);
            f.failed = Some(e.to_string());
            return Err(journal_err(&self.path, "writing a record", e));
        }
        f.len += line.len() as u64;
        self.appended.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn put_checkpoint(&self, run: &str, seq: u64, state: &str) -> autotune_core::Result<String> {
        let safe: String = run
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let name = format!("{safe}-{seq}.ckpt");
        let dir = &self.checkpoints;
        let path = dir.join(&name);
        let tmp = dir.join(format!("{name}.tmp"));
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(dir)?;
            let mut f = File::create(&tmp)?;
            f.write_all(state.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            File::open(dir)?.sync_all()
        };
        write().map_err(|e| journal_err(&path, "writing a checkpoint", e))?;
        Ok(name)
    }

    fn get_checkpoint(&self, name: &str) -> autotune_core::Result<String> {
        if name.contains(['/', '\\']) || name.starts_with('.') {
            return Err(CoreError::Journal(format!(
                "checkpoint name `{name}` is not a file name of {}",
                self.checkpoints.display()
            )));
        }
        let path = self.checkpoints.join(name);
        std::fs::read_to_string(&path).map_err(|e| journal_err(&path, "reading a checkpoint", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use autotune_core::{FitStats, Trace};

    fn teach(ids: Vec<u64>) -> Entry {
        let traces = ids
            .iter()
            .map(|&i| Trace::new(vec![i as u32, 1], 1))
            .collect();
        Entry::Teach {
            ids,
            traces,
            api: None,
            secs: 0.25,
        }
    }

    #[test]
    fn records_round_trip_with_their_checksum() {
        let line = encode("cex/0.01/0", 3, &teach(vec![1, 2]));
        assert!(line.ends_with("\"}\n"), "{line}");
        let rec = decode(line.trim_end().as_bytes()).unwrap();
        assert_eq!((rec.run.as_str(), rec.seq), ("cex/0.01/0", 3));
        assert_eq!(rec.entry, teach(vec![1, 2]));
        // One flipped character anywhere is caught.
        let bad = line.replacen("\"seq\":3", "\"seq\":4", 1);
        assert!(decode(bad.trim_end().as_bytes())
            .unwrap_err()
            .contains("checksum mismatch"));
    }

    fn journal_bytes() -> Vec<u8> {
        let mut s = String::new();
        s += &encode("a", 0, &teach(vec![1]));
        s += &encode("b", 0, &teach(vec![7, 8]));
        s += &encode(
            "a",
            1,
            &Entry::Fit {
                stats: FitStats::default(),
                checkpoint: None,
                secs: 0.0,
            },
        );
        s.into_bytes()
    }

    proptest::proptest! {
        /// A valid journal with one byte changed, bytes cut off the end or bytes appended is
        /// read back without panicking: either refused, or every kept record is a whole
        /// original line and only the tail after the last kept record is dropped.
        #[test]
        fn damaged_journals_never_panic_and_keep_only_whole_records(
            pos in 0usize..10_000,
            byte in proptest::prelude::any::<u8>(),
            cut in 0usize..200,
            extra in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40),
        ) {
            let mut bytes = journal_bytes();
            let p = pos % bytes.len();
            bytes[p] = byte;
            bytes.truncate(bytes.len() - cut.min(bytes.len()));
            bytes.extend_from_slice(&extra);
            if let Ok((recs, summary)) = parse_journal(Path::new("j"), &bytes[..]) {
                let mut start = 0u64;
                for r in &recs {
                    proptest::prop_assert_eq!(bytes[r.end as usize - 1], b'\n');
                    start = r.end;
                }
                match summary.dropped {
                    Some((offset, _)) => proptest::prop_assert_eq!(offset, start),
                    None => proptest::prop_assert_eq!(start, bytes.len() as u64),
                }
            }
        }
    }

    #[test]
    fn an_over_long_line_is_skipped_not_read() {
        use std::io::Read as _;
        let giant = || std::io::repeat(b'a').take(MAX_RECORD_BYTES as u64 + 4096);
        let good = journal_bytes();
        // As the last line: dropped as torn.
        let r = std::io::BufReader::new((&good[..]).chain(giant()));
        let (recs, s) = parse_journal(Path::new("j"), r).unwrap();
        assert_eq!(recs.len(), 3);
        let (offset, what) = s.dropped.unwrap();
        assert_eq!(offset, good.len() as u64);
        assert!(what.contains("more than"), "{what}");
        // Before other records: refused with its offset.
        let r = std::io::BufReader::new(giant().chain(&b"\n"[..]).chain(&good[..]));
        let err = parse_journal(Path::new("j"), r).err().unwrap().to_string();
        assert!(
            err.contains("byte offset 0") && err.contains("more than"),
            "{err}"
        );
    }

    #[test]
    fn a_torn_last_record_is_dropped_and_the_file_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let full = journal_bytes();
        for cut in 1..40 {
            let torn = full.len() - cut;
            std::fs::write(dir.path().join(JOURNAL_FILE), &full[..torn]).unwrap();
            let (j, s) = FileJournal::resume(dir.path()).unwrap();
            assert_eq!(s.records, 2, "cut {cut}");
            let (offset, what) = s.dropped.clone().expect("dropped");
            assert!(offset > 0 && !what.is_empty());
            assert!(j.take("b", 0).is_some() && j.take("a", 1).is_none());
            drop(j);
            let len = std::fs::metadata(dir.path().join(JOURNAL_FILE))
                .unwrap()
                .len();
            assert_eq!(len, offset, "truncated at the torn record");
        }
    }

    #[test]
    fn corruption_before_the_last_record_is_refused_with_the_offset() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = journal_bytes();
        let first_end = bytes.iter().position(|&b| b == b'\n').unwrap();
        bytes[first_end + 20] ^= 0x01;
        std::fs::write(dir.path().join(JOURNAL_FILE), &bytes).unwrap();
        let err = FileJournal::resume(dir.path()).err().unwrap().to_string();
        assert!(
            err.contains(&format!("byte offset {}", first_end + 1)) && err.contains(JOURNAL_FILE),
            "{err}"
        );
    }

    #[test]
    fn gaps_and_repeats_in_a_stream_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = encode("a", 0, &teach(vec![1]));
        s += &encode("a", 2, &teach(vec![2]));
        s += &encode("a", 3, &teach(vec![3]));
        std::fs::write(dir.path().join(JOURNAL_FILE), s).unwrap();
        let err = FileJournal::resume(dir.path()).err().unwrap().to_string();
        assert!(err.contains("record 2 of run a where record 1"), "{err}");
    }

    #[test]
    fn a_second_process_is_kept_out_by_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let j = FileJournal::create(dir.path()).unwrap();
        // Locks are per open file description: a second open in this process conflicts too.
        let err = FileJournal::resume(dir.path()).err().unwrap().to_string();
        assert!(err.contains("in use by another autotune process"), "{err}");
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(j);
        assert!(FileJournal::resume(dir.path()).is_ok());
    }

    #[test]
    fn a_new_run_does_not_overwrite_a_journal_with_records() {
        let dir = tempfile::tempdir().unwrap();
        let j = FileJournal::create(dir.path()).unwrap();
        j.append("a", 0, &teach(vec![1])).unwrap();
        drop(j);
        let err = FileJournal::create(dir.path()).err().unwrap().to_string();
        assert!(err.contains("autotune resume"), "{err}");
        let (j, s) = FileJournal::resume(dir.path()).unwrap();
        assert_eq!((s.records, s.teacher_prompts), (1, 1));
        assert_eq!(j.take("a", 0), Some(teach(vec![1])));
    }

    #[test]
    fn checkpoints_are_stored_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let j = FileJournal::create(dir.path()).unwrap();
        let name = j.put_checkpoint("cex/0.01/0", 5, "state").unwrap();
        assert_eq!(j.get_checkpoint(&name).unwrap(), "state");
        assert!(j.get_checkpoint("../journal.jsonl").is_err());
    }
}
