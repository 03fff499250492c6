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
    /// A retired code, mapped to the current code at the end of its chain of
    /// successors (reported as a warning).
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
        let table = Divisions {
            rows,
            index,
            has_children,
        };
        // A retired code's successor may itself be retired: every chain must
        // end at a current code, never loop back.
        for d in &table.rows {
            if d.successor.is_some() {
                table.current(&d.code)?;
            }
        }
        Ok(table)
    }

    /// The current code a code stands for today: itself, or the end of its
    /// chain of successors (330621 → 330603; a code retired twice is followed
    /// twice). Errors on a cycle, naming its codes.
    pub fn current(&self, code: &str) -> std::result::Result<String, String> {
        let mut chain = vec![code.to_string()];
        let mut at = code;
        while let Some(next) = self.get(at).and_then(|d| d.successor.as_deref()) {
            if let Some(start) = chain.iter().position(|c| c == next) {
                let mut cycle = chain[start..].to_vec();
                cycle.push(next.to_string());
                return Err(format!(
                    "the successors of retired division codes form a cycle: {}",
                    cycle.join(" → ")
                ));
            }
            chain.push(next.to_string());
            at = next;
        }
        Ok(at.to_string())
    }

    pub fn get(&self, code: &str) -> Option<&Division> {
        self.index.get(code).map(|&i| &self.rows[i])
    }

    /// Classifies a code given on a submission.
    pub fn lookup(&self, code: &str) -> DivisionLookup {
        match self.get(code) {
            None => DivisionLookup::Unknown,
            Some(d) => match &d.successor {
                // `from_rows` checked that every chain ends at a current code.
                Some(s) => DivisionLookup::Retired {
                    successor: self.current(s).unwrap_or_else(|_| s.clone()),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn table(rows: &[(&str, &str, &str)]) -> std::result::Result<Divisions, String> {
        Divisions::from_rows(
            rows.iter()
                .map(|(code, parent, successor)| Division {
                    code: code.to_string(),
                    name: format!("区{code}"),
                    parent_code: (!parent.is_empty()).then(|| parent.to_string()),
                    successor: (!successor.is_empty()).then(|| successor.to_string()),
                })
                .collect(),
        )
    }

    #[test]
    fn a_code_retired_twice_maps_to_the_current_division() {
        let t = table(&[
            ("330600", "", ""),
            ("330603", "330600", ""),
            ("330621", "330600", "330622"),
            ("330622", "330600", "330603"),
        ])
        .unwrap();
        assert_eq!(
            t.lookup("330621"),
            DivisionLookup::Retired {
                successor: "330603".into()
            }
        );
        assert_eq!(t.current("330603").unwrap(), "330603");
    }

    #[test]
    fn a_cycle_of_successors_is_an_error_naming_its_codes() {
        let e = table(&[
            ("330600", "", ""),
            ("330621", "330600", "330622"),
            ("330622", "330600", "330623"),
            ("330623", "330600", "330621"),
        ])
        .unwrap_err();
        assert!(
            e.contains("cycle: 330621 → 330622 → 330623 → 330621"),
            "{e}"
        );
    }
}
