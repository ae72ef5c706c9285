//! The layers of configuration: the built-in defaults, then the file given with `--config`,
//! then `FERRY__SECTION__KEY` environment variables, merged into one table and read into
//! [`Settings`] with every problem named by its key.

use std::path::Path;

use super::*;

/// The defaults, compiled in so a bare binary starts with no files around it.
pub const DEFAULTS: &str = include_str!("../../config/ferry.toml");

impl Settings {
    /// Loads the defaults, then `file` (if any), then `FERRY__…` variables from `env`.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, ConfigError> {
        let mut merged: toml::Table = DEFAULTS.parse().map_err(|e: toml::de::Error| {
            ConfigError::File { path: "<built-in defaults>".into(), message: e.to_string() }
        })?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
            let table: toml::Table =
                text.parse().map_err(|e: toml::de::Error| ConfigError::File {
                    path: path.display().to_string(),
                    message: e.message().to_string(),
                })?;
            merge(&mut merged, table);
        }
        for (name, value) in env {
            let Some(rest) = name.strip_prefix("FERRY__") else {
                continue;
            };
            let parts: Vec<String> = rest.split("__").map(|p| p.to_ascii_lowercase()).collect();
            if parts.iter().any(|p| p.is_empty()) {
                return Err(key_err(&name, "malformed variable name"));
            }
            insert_path(&mut merged, &parts, toml::Value::String(value))
                .map_err(|m| key_err(&parts.join("."), m))?;
        }
        let settings: Settings = serde_path_to_error::deserialize(toml::Value::Table(merged))
            .map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner().to_string();
                // serde reports an unknown key at its parent's path, with the name in the text.
                key_err(if path == "." { "<root>" } else { &path }, inner)
            })?;
        let mut settings = settings;
        settings.validate()?;
        settings.targets = Targets::resolve(&settings)?;
        Ok(settings)
    }

    /// Loads from the real process environment.
    pub fn from_env(file: Option<&Path>) -> Result<Settings, ConfigError> {
        Settings::load(file, std::env::vars())
    }
}

fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

fn insert_path(
    table: &mut toml::Table,
    parts: &[String],
    value: toml::Value,
) -> Result<(), String> {
    let (last, parents) = parts.split_last().expect("non-empty path");
    let mut cur = table;
    for p in parents {
        let entry = cur.entry(p.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = entry.as_table_mut().ok_or_else(|| format!("`{p}` is a value, not a section"))?;
    }
    if matches!(cur.get(last), Some(toml::Value::Table(_))) {
        return Err(format!("`{last}` is a section, not a value"));
    }
    cur.insert(last.clone(), value);
    Ok(())
}
