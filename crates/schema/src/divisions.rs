//! The division table (GB/T 2260): counties, their parents, retired codes.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use crate::{Error, Result};

#[derive(Debug, Clone, Deserialize)]
pub struct Division {
    pub code: String,
    pub name: String,
    #[serde(default)]
    pub parent_code: Option<String>,
    /// Set only for a retired code: the code that replaced it.
    #[serde(default)]
    pub successor: Option<String>,
}

/// What a county code on a submission turns out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DivisionLookup {
    /// A current county-level division.
    County,
    /// A retired code, mapped to its successor (reported as a warning).
    Retired {
        successor: String,
    },
    /// A division that exists but is not a county (the city itself, a province).
    NotCounty,
    Unknown,
}

#[derive(Debug, Clone, Default)]
pub struct Divisions {
    pub rows: Vec<Division>,
    index: HashMap<String, usize>,
    has_children: std::collections::HashSet<String>,
}

impl Divisions {
    pub fn load(path: &Path) -> Result<Self> {
        let bad = |message: String| Error::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let mut rdr = csv::Reader::from_path(path).map_err(|e| bad(e.to_string()))?;
        let mut rows = Vec::new();
        for r in rdr.deserialize::<Division>() {
            let mut d = r.map_err(|e| bad(e.to_string()))?;
            d.parent_code = d.parent_code.filter(|s| !s.trim().is_empty());
            d.successor = d.successor.filter(|s| !s.trim().is_empty());
            rows.push(d);
        }
        Self::from_rows(rows).map_err(bad)
    }

    pub fn from_rows(rows: Vec<Division>) -> std::result::Result<Self, String> {
        let mut index = HashMap::new();
        let mut has_children = std::collections::HashSet::new();
        for (i, d) in rows.iter().enumerate() {
            if index.insert(d.code.clone(), i).is_some() {
                return Err(format!("division code {} appears twice", d.code));
            }
            if let (Some(p), None) = (&d.parent_code, &d.successor) {
                has_children.insert(p.clone());
            }
        }
        for d in &rows {
            for c in d.parent_code.iter().chain(&d.successor) {
                if !index.contains_key(c) {
                    return Err(format!("division {} refers to unknown code {c}", d.code));
                }
            }
        }
        Ok(Divisions {
            rows,
            index,
            has_children,
        })
    }

    pub fn get(&self, code: &str) -> Option<&Division> {
        self.index.get(code).map(|&i| &self.rows[i])
    }

    /// Classifies a code given on a submission.
    pub fn lookup(&self, code: &str) -> DivisionLookup {
        match self.get(code) {
            None => DivisionLookup::Unknown,
            Some(d) => match &d.successor {
                Some(s) => DivisionLookup::Retired {
                    successor: s.clone(),
                },
                None if self.has_children.contains(code) => DivisionLookup::NotCounty,
                None => DivisionLookup::County,
            },
        }
    }

    /// Current county-level divisions (leaves of the table, retired codes excluded).
    pub fn counties(&self) -> impl Iterator<Item = &Division> {
        self.rows
            .iter()
            .filter(|d| d.successor.is_none() && !self.has_children.contains(&d.code))
    }
}
