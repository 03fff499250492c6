//! Finding submission files and probing them: content hash and text encoding.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// The kind of a submission file, by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Csv,
    Xlsx,
}

impl FileKind {
    pub fn of(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" => Some(FileKind::Csv),
            "xlsx" => Some(FileKind::Xlsx),
            _ => None,
        }
    }
}

/// Submission files under the given paths (folders are walked recursively, in
/// name order), and the files that were skipped because they are neither CSV nor XLSX.
pub fn discover(paths: &[PathBuf]) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|source| Error::Io {
            path: p.clone(),
            source,
        })?;
        if meta.is_dir() {
            walk(p, &mut files, &mut skipped)?;
        } else if FileKind::of(p).is_some() {
            files.push(p.clone());
        } else {
            skipped.push(p.clone());
        }
    }
    Ok((files, skipped))
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>, skipped: &mut Vec<PathBuf>) -> Result<()> {
    let io = |source| Error::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io)?;
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, files, skipped)?;
        } else if FileKind::of(&p).is_some() {
            // Excel's lock files (~$book.xlsx) are not submissions.
            if p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("~$"))
            {
                skipped.push(p);
            } else {
                files.push(p);
            }
        } else {
            skipped.push(p);
        }
    }
    Ok(())
}

/// The text encoding of a CSV file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    Utf8,
    Utf8Bom,
    /// GB18030, a superset of GBK and GB2312 (what Excel on a Chinese Windows writes).
    Gb18030,
    /// UTF-16 with a byte-order mark.
    Utf16,
}

impl Encoding {
    pub fn label(self) -> &'static str {
        match self {
            Encoding::Utf8 => "UTF-8",
            Encoding::Utf8Bom => "UTF-8 (BOM)",
            Encoding::Gb18030 => "GB18030",
            Encoding::Utf16 => "UTF-16",
        }
    }
}

/// What one streaming pass over a file tells: its hash, size and encoding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    pub sha256: String,
    pub bytes: u64,
    pub encoding: Encoding,
}

/// A file as the file system identifies it (device, inode) with its size and
/// last change. Every write to a file and every rename onto its path moves
/// its `ctime`, which no program can set back (unlike `mtime`), so a file
/// whose stamp is unchanged has the bytes it had when the stamp was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
}

impl Stamp {
    /// The stamp of a file (None where the platform has no inode numbers).
    pub fn of(path: &Path) -> Option<Stamp> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let m = std::fs::metadata(path).ok()?;
            Some(Stamp {
                dev: m.dev(),
                ino: m.ino(),
                size: m.size(),
                mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
                ctime_ns: m.ctime() * 1_000_000_000 + m.ctime_nsec(),
            })
        }
        #[cfg(not(unix))]
        {
            let _ = path;
            None
        }
    }

    /// Last changed before `ns` (nanoseconds since 1970). A file changed
    /// within the file system clock's tick before a stamp is taken could be
    /// written again in the same tick, unseen: such a file is not cached.
    fn settled_before(&self, ns: i64) -> bool {
        self.mtime_ns < ns && self.ctime_ns < ns
    }
}

/// How long ago a file must have last changed for its probe to be kept.
const SETTLE_NS: i64 = 2_000_000_000;

/// One kept probe: the file's stamp when it was probed, and what it told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedProbe {
    pub stamp: Stamp,
    #[serde(flatten)]
    pub probe: Probe,
}

/// Probes kept from the last run, by absolute path, so that a night's inbox
/// (every file sent so far: 1.6 GB nationally) is not read again to be
/// recognised: a file whose [`Stamp`] is unchanged is taken to hold the
/// same bytes (as `git status` does). A changed, moved or rewritten file,
/// or one changed in the last two seconds, is hashed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeCache {
    pub files: std::collections::BTreeMap<String, CachedProbe>,
}

fn cache_key(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .to_string_lossy()
        .into_owned()
}

/// [`probe`] of every file, in order, the files shared among the cores,
/// except those the cache knows unchanged. Returns the probes and the cache
/// of this run (every file probed or recognised, and no other).
pub fn probe_all(paths: &[PathBuf], cache: &ProbeCache) -> (Vec<Result<Probe>>, ProbeCache) {
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    probe_all_settled(paths, cache, now_ns - SETTLE_NS)
}

/// [`probe_all`], keeping the probes of files last changed before `settled`.
fn probe_all_settled(
    paths: &[PathBuf],
    cache: &ProbeCache,
    settled: i64,
) -> (Vec<Result<Probe>>, ProbeCache) {
    let one = |path: &Path| -> (Result<Probe>, Option<CachedProbe>) {
        let before = Stamp::of(path);
        if let (Some(s), Some(c)) = (before, cache.files.get(&cache_key(path))) {
            if c.stamp == s && s.settled_before(settled) {
                return (Ok(c.probe.clone()), Some(c.clone()));
            }
        }
        let p = probe(path);
        let keep = match (&p, before, Stamp::of(path)) {
            (Ok(p), Some(b), Some(a)) if a == b && b.settled_before(settled) => Some(CachedProbe {
                stamp: b,
                probe: p.clone(),
            }),
            _ => None,
        };
        (p, keep)
    };
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(paths.len().max(1));
    let mut out: Vec<Option<(Result<Probe>, Option<CachedProbe>)>> =
        (0..paths.len()).map(|_| None).collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let one = &one;
                scope.spawn(move || {
                    (w..paths.len())
                        .step_by(workers)
                        .map(|i| (i, one(&paths[i])))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            for (i, p) in h.join().expect("a probe thread panicked") {
                out[i] = Some(p);
            }
        }
    });
    let mut kept = ProbeCache::default();
    let probes = out
        .into_iter()
        .zip(paths)
        .map(|(p, path)| {
            let (p, keep) = p.expect("every file probed");
            if let Some(k) = keep {
                kept.files.insert(cache_key(path), k);
            }
            p
        })
        .collect();
    (probes, kept)
}

/// Hashes the file and decides its encoding in one pass with a fixed buffer:
/// a file that is valid UTF-8 from end to end is UTF-8; anything else is GB18030.
pub fn probe(path: &Path) -> Result<Probe> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = File::open(path).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    // The first `pending` bytes of `buf` are an incomplete UTF-8 sequence
    // left at the end of the last read (at most 3 bytes), validated with
    // the next read in place, without copying the chunk.
    let mut pending = 0usize;
    let mut utf8 = true;
    let mut first = true;
    let mut bom = None;
    let mut bytes = 0u64;
    loop {
        let n = f.read(&mut buf[pending..]).map_err(io)?;
        if n == 0 {
            break;
        }
        let end = pending + n;
        bytes += n as u64;
        hasher.update(&buf[pending..end]);
        if first {
            first = false;
            if buf[..n].starts_with(&[0xEF, 0xBB, 0xBF]) {
                bom = Some(Encoding::Utf8Bom);
            } else if buf[..n].starts_with(&[0xFF, 0xFE]) || buf[..n].starts_with(&[0xFE, 0xFF]) {
                bom = Some(Encoding::Utf16);
            }
        }
        pending = 0;
        if utf8 && bom != Some(Encoding::Utf16) {
            match std::str::from_utf8(&buf[..end]) {
                Ok(_) => {}
                // An incomplete sequence at the end continues in the next read.
                Err(e) if e.error_len().is_none() => {
                    buf.copy_within(e.valid_up_to()..end, 0);
                    pending = end - e.valid_up_to();
                }
                Err(_) => utf8 = false,
            }
        }
    }
    if pending > 0 {
        utf8 = false;
    }
    let encoding = match bom {
        Some(b) => b,
        None if utf8 => Encoding::Utf8,
        None => Encoding::Gb18030,
    };
    Ok(Probe {
        sha256: hex::encode(hasher.finalize()),
        bytes,
        encoding,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A character split across the 1 MiB reads is still UTF-8; a file that
    /// ends inside a character, or holds a GB18030 byte pair, is not; the
    /// hash is the file's; `probe_all` keeps the order of its paths.
    #[test]
    fn probes_decide_the_encoding_across_read_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, bytes: &[u8]| {
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            p
        };
        // "绍" is 3 bytes in UTF-8: start it 1 byte before the boundary.
        let mut split = vec![b'a'; (1 << 20) - 1];
        split.extend_from_slice("绍兴,330600\n".as_bytes());
        let mut cut = split.clone();
        cut.truncate((1 << 20) + 1); // ends inside the character
        let gb = b"name\n\xc9\xdc\xd0\xcb\n".to_vec(); // 绍兴 in GB18030
        let paths = vec![
            write("split.csv", &split),
            write("cut.csv", &cut),
            write("gb.csv", &gb),
            write("bom.csv", b"\xef\xbb\xbfname\n"),
        ];
        let (all, _) = probe_all(&paths, &ProbeCache::default());
        let encodings: Vec<Encoding> = all.iter().map(|p| p.as_ref().unwrap().encoding).collect();
        assert_eq!(
            encodings,
            [
                Encoding::Utf8,
                Encoding::Gb18030,
                Encoding::Gb18030,
                Encoding::Utf8Bom
            ]
        );
        for (p, got) in paths.iter().zip(&all) {
            let got = got.as_ref().unwrap();
            let bytes = std::fs::read(p).unwrap();
            assert_eq!(got.bytes, bytes.len() as u64);
            assert_eq!(got.sha256, hex::encode(Sha256::digest(&bytes)));
        }
    }

    /// A file whose stamp is unchanged is not read again (the cache's hash,
    /// doctored here, is what comes back); one rewritten with the same size,
    /// appended to, or changed too recently to be settled is hashed again,
    /// and the cache returned holds exactly the files probed.
    #[test]
    fn probes_of_unchanged_files_come_from_the_cache() {
        use std::io::Write as _;
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.csv");
        let b = dir.path().join("b.csv");
        std::fs::write(&a, "x,y\n1,2\n").unwrap();
        std::fs::write(&b, "x,y\n3,4\n").unwrap();
        let paths = vec![a.clone(), b.clone()];
        let later = |p: &Path| Stamp::of(p).unwrap().ctime_ns + 1;
        let settled = later(&a).max(later(&b));
        let (first, cache) = probe_all_settled(&paths, &ProbeCache::default(), settled);
        let real_a = first[0].as_ref().unwrap().sha256.clone();
        assert_eq!(cache.files.len(), 2);

        let mut doctored = cache.clone();
        for c in doctored.files.values_mut() {
            c.probe.sha256 = "from the cache".into();
        }
        let (again, kept) = probe_all_settled(&paths, &doctored, settled);
        assert!(again
            .iter()
            .all(|p| p.as_ref().unwrap().sha256 == "from the cache"));
        assert_eq!(kept, doctored);

        // Not settled: hashed, and not kept.
        let (unsettled, kept) = probe_all_settled(&paths, &doctored, 0);
        assert_eq!(unsettled[0].as_ref().unwrap().sha256, real_a);
        assert!(kept.files.is_empty());

        // Rewritten with the same size (after a clock tick), and appended to.
        std::thread::sleep(std::time::Duration::from_millis(50));
        std::fs::write(&a, "x,y\n5,6\n").unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&b)
            .unwrap()
            .write_all(b"7,8\n")
            .unwrap();
        let settled = later(&a).max(later(&b));
        let (changed, kept) = probe_all_settled(&paths, &doctored, settled);
        let sha = |p: &Path| hex::encode(Sha256::digest(std::fs::read(p).unwrap()));
        assert_eq!(changed[0].as_ref().unwrap().sha256, sha(&a));
        assert_eq!(changed[1].as_ref().unwrap().sha256, sha(&b));
        assert_ne!(sha(&a), real_a);
        assert_eq!(kept.files[&cache_key(&b)].probe.bytes, 12);

        // Only the files probed this time are kept.
        let (_, kept) = probe_all_settled(&paths[..1], &kept, settled);
        assert_eq!(kept.files.keys().collect::<Vec<_>>(), vec![&cache_key(&a)]);
    }
}
