//! How a message shows a value it could not accept: whole when short, else a
//! prefix and the length. A hostile file's 200 MB cell must not travel into a
//! terminal, a log or the quarantine table.

/// Characters of a value a message or a diagnostic shows.
pub const SHOWN_CHARS: usize = 64;

/// The value in quotes, cut to [`SHOWN_CHARS`] characters with its length
/// when longer: `'abc'`, `'0000…' (1000000 characters)`.
pub fn quote(s: &str) -> String {
    match cut(s) {
        None => format!("'{s}'"),
        Some(head) => format!("'{head}…' ({} characters)", s.chars().count()),
    }
}

/// The value itself when short, else its first [`SHOWN_CHARS`] characters
/// and `…`: what a diagnostic keeps of a bad cell.
pub fn prefix(s: &str) -> String {
    match cut(s) {
        None => s.to_string(),
        Some(head) => format!("{head}…"),
    }
}

fn cut(s: &str) -> Option<&str> {
    s.char_indices().nth(SHOWN_CHARS).map(|(at, _)| &s[..at])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_values_stay_whole_long_ones_are_cut_by_characters() {
        assert_eq!(quote("12,3x"), "'12,3x'");
        let exact = "研".repeat(SHOWN_CHARS);
        assert_eq!(quote(&exact), format!("'{exact}'"));
        assert_eq!(prefix(&exact), exact);
        let long = format!("{exact}究究");
        assert_eq!(
            quote(&long),
            format!("'{exact}…' ({} characters)", SHOWN_CHARS + 2)
        );
        assert_eq!(prefix(&long), format!("{exact}…"));
    }
}
