//! Storage ports: SQL (sqlx on SQLite or PostgreSQL) and objects (object_store on a local
//! directory or S3). Domain modules reach storage only through these types.

pub mod objects;
pub mod sql;

pub use objects::{ObjectError, Objects};
pub use sql::{Backend, Db, DbError};
