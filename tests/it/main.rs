//! Integration tests: the real server on 127.0.0.1:0, speaking HTTP to it, on SQLite and
//! PostgreSQL, local directory and Garage S3. One test binary keeps link times down.
//! PostgreSQL and Garage come from `scripts/test` (FERRY_TEST_PG_URL, FERRY_TEST_S3_*).

#[macro_use]
mod support;

mod access;
mod architecture;
mod auth;
mod broadcast;
mod browser;
mod consult;
mod dicomweb;
mod dimse;
mod ecg;
mod ecg_print;
mod errors;
mod island;
mod netns;
mod ops;
mod phi_logs;
mod races;
mod reading;
mod render;
mod signal;
mod store_objects;
mod store_sql;
mod upload;
