//! `Phi<T>`: a patient-identifying value. Its Debug and Display print `[redacted]`, so it can
//! sit in structs that are logged or traced without leaking; code that needs the value calls
//! `expose()`, which is easy to search for in review.

use serde::{Deserialize, Serialize};

#[derive(Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Phi<T>(T);

impl<T> Phi<T> {
    pub fn new(v: T) -> Self {
        Phi(v)
    }
    /// The value itself: for storage and for the person entitled to see it, never for logs.
    pub fn expose(&self) -> &T {
        &self.0
    }
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::fmt::Debug for Phi<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<T> std::fmt::Display for Phi<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::Phi;

    #[test]
    fn never_prints_its_value() {
        let name = Phi::new("DOE^JANE".to_string());
        assert_eq!(format!("{name:?} {name}"), "[redacted] [redacted]");
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Study {
            patient: Phi<String>,
        }
        assert!(!format!("{:?}", Study { patient: name.clone() }).contains("DOE"));
        assert_eq!(serde_json::to_string(&name).unwrap(), "\"DOE^JANE\"");
        assert_eq!(name.expose(), "DOE^JANE");
    }
}
