//! The per-device id: a readable name the user picks once per browser, and the MQTT
//! client id derived from it.
//!
//! Client id = `{namespace}-{device id}`: stable for as long as the device id is kept,
//! distinct between apps (namespaces) on one broker.

use thiserror::Error;

/// Longest device id accepted, in characters.
pub const MAX_DEVICE_ID_CHARS: usize = 64;

/// Why a device id is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DeviceIdError {
    /// Empty (after trimming spaces).
    #[error("the device id is empty")]
    Empty,
    /// Longer than [`MAX_DEVICE_ID_CHARS`].
    #[error("the device id is longer than {MAX_DEVICE_ID_CHARS} characters")]
    TooLong,
    /// Contains a character other than letters, digits, `-`, `_` and `.`.
    #[error("the device id may only hold letters, digits, '-', '_' and '.' (found {0:?})")]
    InvalidCharacter(char),
}

/// Checks a device id and returns it trimmed.
pub fn validate(device_id: &str) -> Result<String, DeviceIdError> {
    let trimmed = device_id.trim();
    if trimmed.is_empty() {
        return Err(DeviceIdError::Empty);
    }
    if trimmed.chars().count() > MAX_DEVICE_ID_CHARS {
        return Err(DeviceIdError::TooLong);
    }
    if let Some(bad) = trimmed
        .chars()
        .find(|c| !(c.is_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(DeviceIdError::InvalidCharacter(bad));
    }
    Ok(trimmed.to_owned())
}

/// The MQTT client id of `device_id` in `namespace`.
pub fn client_id(namespace: &str, device_id: &str) -> String {
    format!("{namespace}-{device_id}")
}

const ADJECTIVES: [&str; 16] = [
    "amber", "brave", "calm", "dapper", "eager", "fuzzy", "gentle", "happy", "jolly", "keen", "lucky",
    "mellow", "nimble", "quiet", "rapid", "sunny",
];
const NOUNS: [&str; 16] = [
    "badger", "comet", "dolphin", "falcon", "gecko", "heron", "koala", "lynx", "maple", "otter", "panda",
    "quartz", "raven", "tiger", "walrus", "zebra",
];

/// A readable default such as `sunny-otter-42`, from three random numbers in 0..1.
pub fn suggest(random: [f64; 3]) -> String {
    let pick = |r: f64, n: usize| ((r.clamp(0.0, 0.999_999) * n as f64) as usize).min(n - 1);
    format!(
        "{}-{}-{}",
        ADJECTIVES[pick(random[0], ADJECTIVES.len())],
        NOUNS[pick(random[1], NOUNS.len())],
        10 + pick(random[2], 90)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_ids_are_trimmed_and_kept() {
        assert_eq!(validate("  laptop-1 "), Ok("laptop-1".to_owned()));
        assert_eq!(validate("Küche.tablet_2"), Ok("Küche.tablet_2".to_owned()));
    }

    #[test]
    fn invalid_ids_say_why() {
        assert_eq!(validate("   "), Err(DeviceIdError::Empty));
        assert_eq!(validate(&"x".repeat(65)), Err(DeviceIdError::TooLong));
        assert_eq!(validate("a/b"), Err(DeviceIdError::InvalidCharacter('/')));
        assert_eq!(validate("my phone"), Err(DeviceIdError::InvalidCharacter(' ')));
    }

    #[test]
    fn suggestions_are_valid_and_client_ids_stable() {
        for random in [[0.0, 0.0, 0.0], [0.999, 0.5, 0.999], [1.0, 1.0, 1.0]] {
            let suggestion = suggest(random);
            assert_eq!(validate(&suggestion), Ok(suggestion.clone()));
        }
        assert_eq!(suggest([0.0, 0.0, 0.0]), "amber-badger-10");
        assert_eq!(client_id("chat", "laptop"), "chat-laptop");
    }
}
