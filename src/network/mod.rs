//! The network model: sites in tiers, users with roles and specialties, devices. Identifiers
//! and enumerations are parsed once at the boundary into the types below.

pub mod store;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {why}")]
pub struct ParseError {
    pub what: &'static str,
    pub why: String,
}

pub(crate) fn perr(what: &'static str, why: impl Into<String>) -> ParseError {
    ParseError { what, why: why.into() }
}

/// A lowercase identifier: 1–63 of `a-z 0-9 - . _`, starting with a letter or digit.
fn check_slug(what: &'static str, s: &str) -> Result<(), ParseError> {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "-._".contains(c);
    if s.is_empty() || s.len() > 63 {
        return Err(perr(what, "must be 1 to 63 characters"));
    }
    if !s.chars().all(ok_char) {
        return Err(perr(what, "only lowercase letters, digits, '-', '.' and '_' are allowed"));
    }
    if !s.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(perr(what, "must start with a letter or digit"));
    }
    Ok(())
}

macro_rules! slug_type {
    ($(#[$m:meta])* $name:ident, $what:literal) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl FromStr for $name {
            type Err = ParseError;
            fn from_str(s: &str) -> Result<Self, ParseError> {
                check_slug($what, s)?;
                Ok($name(s.to_string()))
            }
        }
        impl TryFrom<String> for $name {
            type Error = ParseError;
            fn try_from(s: String) -> Result<Self, ParseError> {
                check_slug($what, &s)?;
                Ok($name(s))
            }
        }
        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

slug_type!(
    /// A site's stable identifier, e.g. `island-clinic`.
    SiteId,
    "site id"
);
slug_type!(
    /// A user's login name, e.g. `dr-zhao`.
    UserId,
    "user name"
);
slug_type!(
    /// A clinical specialty, e.g. `radiology`, `cardiology`.
    Specialty,
    "specialty"
);

macro_rules! word_enum {
    ($(#[$m:meta])* $name:ident, $what:literal { $($var:ident = $text:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub enum $name { $($var),* }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$var),*];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$var => $text),* }
            }
        }
        impl std::str::FromStr for $name {
            type Err = $crate::network::ParseError;
            fn from_str(s: &str) -> Result<Self, $crate::network::ParseError> {
                match s {
                    $($text => Ok($name::$var),)*
                    _ => Err($crate::network::perr($what, format!(
                        "`{s}` is not one of: {}", [$($text),*].join(", ")))),
                }
            }
        }
        impl TryFrom<String> for $name {
            type Error = $crate::network::ParseError;
            fn try_from(s: String) -> Result<Self, $crate::network::ParseError> { s.parse() }
        }
        impl From<$name> for String {
            fn from(v: $name) -> String { v.as_str().to_string() }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str(self.as_str()) }
        }
    };
}
pub(crate) use word_enum;

word_enum!(
    /// Where a site stands in the referral network.
    Tier, "tier" { City = "city", County = "county", Township = "township", Village = "village" }
);
word_enum!(
    SiteKind, "site kind" { Hospital = "hospital", Clinic = "clinic", ReadingCentre = "reading-centre" }
);
word_enum!(
    /// What a person does in Ferry. A user may hold several.
    Role, "role" {
        Clinician = "clinician",
        Specialist = "specialist",
        Reader = "reader",
        Trainer = "trainer",
        Admin = "admin",
    }
);
word_enum!(
    /// What a device is: an imaging modality (DICOM AE), an ECG cart, or an upload client.
    DeviceKind, "device kind" { Modality = "modality", EcgCart = "ecg-cart", Uploader = "uploader" }
);

/// A DICOM Application Entity title: 1–16 characters, no backslash or control characters,
/// no leading or trailing spaces.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AeTitle(String);

impl AeTitle {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AeTitle {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, ParseError> {
        if s.is_empty() || s.len() > 16 {
            return Err(perr("AE title", "must be 1 to 16 characters"));
        }
        if s.trim() != s {
            return Err(perr("AE title", "no leading or trailing spaces"));
        }
        if !s.chars().all(|c| c.is_ascii_graphic() || c == ' ') || s.contains('\\') {
            return Err(perr("AE title", "only printable ASCII without backslash"));
        }
        Ok(AeTitle(s))
    }
}

impl FromStr for AeTitle {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        AeTitle::try_from(s.to_string())
    }
}

impl From<AeTitle> for String {
    fn from(v: AeTitle) -> String {
        v.0
    }
}

/// A display text (site name, person's name, label): trimmed, 1–200 characters, no control
/// characters.
pub fn check_text(what: &'static str, s: &str) -> Result<String, ParseError> {
    let t = s.trim();
    if t.is_empty() || t.chars().count() > 200 {
        return Err(perr(what, "must be 1 to 200 characters"));
    }
    if t.chars().any(char::is_control) {
        return Err(perr(what, "must not contain control characters"));
    }
    Ok(t.to_string())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Site {
    pub id: SiteId,
    pub name: String,
    pub tier: Tier,
    pub kind: SiteKind,
    pub parent: Option<SiteId>,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: UserId,
    pub site: SiteId,
    pub display_name: String,
    pub roles: Vec<Role>,
    pub specialties: Vec<Specialty>,
    pub disabled: bool,
    pub has_password: bool,
    pub created_at: String,
}

impl User {
    pub fn has_role(&self, r: Role) -> bool {
        self.roles.contains(&r)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Device {
    pub id: String,
    pub site: SiteId,
    pub kind: DeviceKind,
    pub name: String,
    pub ae_title: Option<AeTitle>,
    pub created_at: String,
}

/// Input for a new site.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSite {
    pub id: SiteId,
    pub name: String,
    pub tier: Tier,
    pub kind: SiteKind,
    #[serde(default)]
    pub parent: Option<SiteId>,
}

/// Input for a new user (the site comes from the route).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub id: UserId,
    pub display_name: String,
    pub roles: Vec<Role>,
    #[serde(default)]
    pub specialties: Vec<Specialty>,
    /// Optional initial password; without one the user can only use API tokens.
    #[serde(default)]
    pub password: Option<String>,
}

/// Changes to a user; absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    pub display_name: Option<String>,
    pub roles: Option<Vec<Role>>,
    pub specialties: Option<Vec<Specialty>>,
    pub disabled: Option<bool>,
    pub password: Option<String>,
}

/// Input for a new device (the site comes from the route).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDevice {
    pub kind: DeviceKind,
    pub name: String,
    #[serde(default)]
    pub ae_title: Option<AeTitle>,
}

/// Joins a list for storage as comma-separated text.
pub(crate) fn join_list<T: fmt::Display>(items: &[T]) -> String {
    items.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(",")
}

/// Parses a comma-separated stored list.
pub(crate) fn split_list<T: FromStr>(s: &str) -> Vec<T> {
    s.split(',').filter(|p| !p.is_empty()).filter_map(|p| p.parse().ok()).collect()
}

/// Roles must be a non-empty set; duplicates are folded.
pub fn normalise_roles(mut roles: Vec<Role>) -> Result<Vec<Role>, ParseError> {
    roles.sort();
    roles.dedup();
    if roles.is_empty() {
        return Err(perr("roles", "at least one role is required"));
    }
    Ok(roles)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_and_words_parse_strictly() {
        assert!("island-clinic".parse::<SiteId>().is_ok());
        for bad in ["", "Island", "a b", "-x", "x/y", &"a".repeat(64)] {
            assert!(bad.parse::<SiteId>().is_err(), "{bad:?}");
        }
        assert_eq!("reading-centre".parse::<SiteKind>(), Ok(SiteKind::ReadingCentre));
        let e = "surgeon".parse::<Role>().unwrap_err();
        assert!(e.why.contains("clinician"), "{e}");
        assert!(AeTitle::try_from("ISLANDCT".to_string()).is_ok());
        assert!(AeTitle::try_from("A\\B".to_string()).is_err());
        assert!(AeTitle::try_from("SEVENTEEN_CHARS_X".to_string()).is_err());
        assert!(normalise_roles(vec![]).is_err());
        assert_eq!(
            normalise_roles(vec![Role::Admin, Role::Clinician, Role::Admin]).unwrap(),
            vec![Role::Clinician, Role::Admin]
        );
        assert_eq!(
            split_list::<Role>(&join_list(&[Role::Reader, Role::Admin])),
            vec![Role::Reader, Role::Admin]
        );
    }
}
