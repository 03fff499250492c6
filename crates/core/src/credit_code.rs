//! The unified social credit code (统一社会信用代码, GB 32100-2015).

/// The 31 symbols of the code, in value order (no I, O, S, V, Z).
pub const ALPHABET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
const WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];

fn value_of(c: u8) -> Option<u32> {
    ALPHABET.iter().position(|&a| a == c).map(|p| p as u32)
}

/// The check character for the first 17 characters of a code.
///
/// Returns `None` when one of them is outside the alphabet.
pub fn check_char(first17: &str) -> Option<char> {
    let bytes = first17.as_bytes();
    if bytes.len() != 17 {
        return None;
    }
    let mut sum = 0u32;
    for (b, w) in bytes.iter().zip(WEIGHTS) {
        sum += value_of(*b)? * w;
    }
    let v = (31 - sum % 31) % 31;
    Some(ALPHABET[v as usize] as char)
}

/// Validates a credit code; returns it upper-cased, or the reason it is not one.
pub fn validate(raw: &str) -> Result<String, String> {
    let code = raw.trim().to_ascii_uppercase();
    if code.len() == 15 && code.bytes().all(|b| b.is_ascii_digit()) {
        return Err("a 15-digit registration number is not a credit code".into());
    }
    if code.chars().count() != 18 {
        return Err(format!(
            "a credit code has 18 characters, this has {}",
            code.chars().count()
        ));
    }
    if let Some((i, c)) = code
        .char_indices()
        .find(|(_, c)| !ALPHABET.contains(&(*c as u8)) || !c.is_ascii())
    {
        return Err(format!(
            "character {} ('{c}') is not allowed in a credit code",
            i + 1
        ));
    }
    let expected = check_char(&code[..17]).expect("alphabet checked above");
    let got = code.as_bytes()[17] as char;
    if got != expected {
        return Err(format!(
            "wrong check character '{got}', expected '{expected}'"
        ));
    }
    Ok(code)
}

/// Completes 17 characters into a valid code (used by the fixture generator).
pub fn complete(first17: &str) -> Option<String> {
    check_char(first17).map(|c| format!("{first17}{c}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_codes_are_valid() {
        // Worked by hand: for 91330100716105852 the weighted sum is 884,
        // 884 mod 31 = 16, 31 - 16 = 15 → 'F'; for 91440300192203821 it is
        // 831, 831 mod 31 = 25, 31 - 25 = 6 → '6'.
        assert_eq!(
            validate("91330100716105852F").unwrap(),
            "91330100716105852F"
        );
        assert_eq!(
            validate("914403001922038216").unwrap(),
            "914403001922038216"
        );
        assert_eq!(
            validate(" 91330100716105852f ").unwrap(),
            "91330100716105852F"
        );
    }

    #[test]
    fn wrong_check_character_is_named() {
        assert_eq!(
            validate("91330100716105852G").unwrap_err(),
            "wrong check character 'G', expected 'F'"
        );
        assert_eq!(
            validate("914403001922038217").unwrap_err(),
            "wrong check character '7', expected '6'"
        );
    }

    #[test]
    fn malformed_codes_are_rejected() {
        assert!(validate("330100400012345")
            .unwrap_err()
            .contains("15-digit"));
        assert!(validate("9133010071610585")
            .unwrap_err()
            .contains("18 characters"));
        assert!(validate("91330100716105852I")
            .unwrap_err()
            .contains("character 18"));
        assert!(validate("9133O100716105852F")
            .unwrap_err()
            .contains("character 5"));
    }
}
