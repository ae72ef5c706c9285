//! Password hashing with argon2id. Hashing and verifying are CPU-heavy, so both run on the
//! blocking pool; the PHC string keeps each hash's own cost, so raising the configured cost
//! affects only new hashes.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::config::AuthSettings;

pub const MIN_LEN: usize = 8;
pub const MAX_LEN: usize = 256;

/// Password rules, checked before hashing. Returns what is wrong, for the person choosing it.
pub fn check_rules(password: &str) -> Result<(), String> {
    let n = password.chars().count();
    if n < MIN_LEN {
        return Err(format!("password must have at least {MIN_LEN} characters"));
    }
    if n > MAX_LEN {
        return Err(format!("password must have at most {MAX_LEN} characters"));
    }
    Ok(())
}

#[derive(Debug, Clone, Copy)]
pub struct Cost {
    pub memory_kib: u32,
    pub iterations: u32,
}

impl From<&AuthSettings> for Cost {
    fn from(a: &AuthSettings) -> Self {
        Cost { memory_kib: a.argon2_memory_kib, iterations: a.argon2_iterations }
    }
}

fn hash_blocking(password: &str, cost: Cost) -> anyhow::Result<String> {
    let params = Params::new(cost.memory_kib, cost.iterations, 1, None)
        .map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?;
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    let hash = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
    Ok(hash.to_string())
}

/// Hashes a password (after `check_rules`).
pub async fn hash(password: String, cost: Cost) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || hash_blocking(&password, cost)).await?
}

/// Hashes synchronously, for the CLI.
pub fn hash_now(password: &str, cost: Cost) -> anyhow::Result<String> {
    hash_blocking(password, cost)
}

/// Verifies a password against a stored PHC hash. With no stored hash, a dummy hash is
/// verified anyway so that unknown users and known ones take the same time.
pub async fn verify(stored: Option<String>, password: String, cost: Cost) -> bool {
    tokio::task::spawn_blocking(move || {
        let known = stored.is_some();
        let phc = match stored {
            Some(h) => h,
            None => match hash_blocking("ferry-timing-equaliser", cost) {
                Ok(h) => h,
                Err(_) => return false,
            },
        };
        let Ok(parsed) = PasswordHash::new(&phc) else {
            return false;
        };
        let ok = Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok();
        known && ok
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_and_verify() {
        let cost = Cost { memory_kib: 64, iterations: 1 };
        let h = hash("correct horse".into(), cost).await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify(Some(h.clone()), "correct horse".into(), cost).await);
        assert!(!verify(Some(h), "wrong horse".into(), cost).await);
        assert!(!verify(None, "correct horse".into(), cost).await);
        assert!(check_rules("short").is_err());
        assert!(check_rules("long enough").is_ok());
    }
}
