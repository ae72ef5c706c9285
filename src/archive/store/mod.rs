//! The archive's storage: instance bytes in the object store, the index in SQL. An instance
//! becomes visible only when its index row commits, and that happens only after its bytes are
//! durable — so a crash at any point leaves nothing half-visible, and sending again completes.

use bytes::Bytes;
use sha2::Digest;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::status::*;
use super::{Instance, Rejection};
use crate::auth::policy::{ImagingRead, ImagingSearch, ImagingStore, Permit, StudyShare};
use crate::network::SiteId;
use crate::storage::sql::is_unique_violation;
use crate::storage::{Db, Objects};

/// Builds a WHERE clause with numbered parameters.
struct Where {
    sql: String,
    args: Vec<String>,
}

impl Where {
    fn new() -> Self {
        Where { sql: String::from(" WHERE 1=1"), args: vec![] }
    }
    fn arg(&mut self, v: impl Into<String>) -> String {
        self.args.push(v.into());
        format!("${}", self.args.len())
    }
    fn push(&mut self, clause: &str) {
        self.sql.push_str(" AND ");
        self.sql.push_str(clause);
    }
    /// Wildcard text match (case-insensitive, `*` and `?` as in DICOM).
    fn text(&mut self, col: &str, v: &Option<String>) {
        let Some(v) = v.as_deref().filter(|v| !v.is_empty() && *v != "*") else { return };
        if v.contains(['*', '?']) {
            let pat: String = v
                .chars()
                .map(|c| match c {
                    '*' => "%".to_string(),
                    '?' => "_".to_string(),
                    '%' | '_' | '\\' => format!("\\{c}"),
                    c => c.to_string(),
                })
                .collect();
            let p = self.arg(pat);
            self.push(&format!("LOWER({col}) LIKE LOWER({p}) ESCAPE '\\'"));
            // The literal prefix as a range too, so the index on LOWER(col) narrows the scan.
            if let Some((from, to)) = prefix_range(v) {
                let (a, b) = (self.arg(from), self.arg(to));
                self.push(&format!("LOWER({col}) >= {a} AND LOWER({col}) < {b}"));
            }
        } else {
            let p = self.arg(v);
            self.push(&format!("LOWER({col}) = LOWER({p})"));
        }
    }
    fn in_list(&mut self, col: &str, values: &[String]) {
        if values.is_empty() {
            return;
        }
        let marks: Vec<String> = values.iter().map(|v| self.arg(v.clone())).collect();
        self.push(&format!("{col} IN ({})", marks.join(", ")));
    }
    /// A DICOM date (`YYYYMMDD`) or range (`A-B`, `-B`, `A-`).
    fn date_range(&mut self, col: &str, v: &Option<String>) {
        let Some(v) = v.as_deref().filter(|v| !v.is_empty()) else { return };
        match v.split_once('-') {
            Some((from, to)) => {
                if !from.is_empty() {
                    let p = self.arg(from);
                    self.push(&format!("{col} >= {p}"));
                }
                if !to.is_empty() {
                    let p = self.arg(to);
                    self.push(&format!("{col} <= {p}"));
                }
            }
            None => {
                let p = self.arg(v);
                self.push(&format!("{col} = {p}"));
            }
        }
    }
    fn bind_scalar<'q, O>(
        &'q self,
        mut q: sqlx::query::QueryScalar<'q, sqlx::Any, O, sqlx::any::AnyArguments<'q>>,
    ) -> sqlx::query::QueryScalar<'q, sqlx::Any, O, sqlx::any::AnyArguments<'q>> {
        for a in &self.args {
            q = q.bind(a.as_str());
        }
        q
    }
    fn bind<'q>(
        &'q self,
        mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
        for a in &self.args {
            q = q.bind(a.as_str());
        }
        q
    }
}

mod ingest;
mod query;
mod read;
mod shares;

pub use ingest::*;
pub use query::*;
pub use read::*;
pub use shares::*;
