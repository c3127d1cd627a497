//! Text a host supplies (names, versions, serials, identifiers) is cut here, once, to
//! [`MAX_TEXT`] characters, so memory, the API and both databases hold the same value: a host
//! reporting a 500,000-character hostname is kept with its first 255.

/// The most characters Flotilla keeps of one host-supplied value: what a MySQL
/// `VARCHAR(255)` column holds, as Fleet's.
pub const MAX_TEXT: usize = 255;

/// `value` without surrounding whitespace and cut to [`MAX_TEXT`] characters.
pub fn clip(value: &str) -> &str {
    let value = value.trim();
    match value.char_indices().nth(MAX_TEXT) {
        Some((end, _)) => &value[..end],
        None => value,
    }
}

/// [`clip`] of an owned value, reusing it when it already fits.
pub fn clip_owned(value: String) -> String {
    let clipped = clip(&value);
    if clipped.len() == value.len() {
        value
    } else {
        clipped.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_cut_on_a_character_boundary() {
        let long = "é".repeat(600);
        assert_eq!(clip(&long).chars().count(), MAX_TEXT);
        assert_eq!(clip_owned(long).chars().count(), MAX_TEXT);
    }

    #[test]
    fn short_text_is_trimmed_only() {
        assert_eq!(clip("  web-1 \n"), "web-1");
        assert_eq!(clip_owned("  web-1 ".into()), "web-1");
        assert_eq!(clip_owned("web-1".into()), "web-1");
        assert_eq!(clip(""), "");
    }
}
