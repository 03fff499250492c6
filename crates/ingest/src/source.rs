//! Finding submission files and probing them: content hash and text encoding.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
#[derive(Debug, Clone)]
pub struct Probe {
    pub sha256: String,
    pub bytes: u64,
    pub encoding: Encoding,
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
    let mut carry: Vec<u8> = Vec::new();
    let mut utf8 = true;
    let mut first = true;
    let mut bom = None;
    let mut bytes = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        hasher.update(&buf[..n]);
        if first {
            first = false;
            if buf[..n].starts_with(&[0xEF, 0xBB, 0xBF]) {
                bom = Some(Encoding::Utf8Bom);
            } else if buf[..n].starts_with(&[0xFF, 0xFE]) || buf[..n].starts_with(&[0xFE, 0xFF]) {
                bom = Some(Encoding::Utf16);
            }
        }
        if utf8 && bom != Some(Encoding::Utf16) {
            carry.extend_from_slice(&buf[..n]);
            match std::str::from_utf8(&carry) {
                Ok(_) => carry.clear(),
                // An incomplete sequence at the end of the chunk continues in the next.
                Err(e) if e.error_len().is_none() => {
                    let keep = carry.split_off(e.valid_up_to());
                    carry = keep;
                }
                Err(_) => utf8 = false,
            }
        }
    }
    if !carry.is_empty() {
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
