//! Ferry: a telemedicine collaboration network server. See ARCHITECTURE.md for the map.

pub mod archive;
pub mod audit;
pub mod auth;
pub mod bench;
pub mod config;
pub mod consult;
pub mod demo;
pub mod dicomweb;
pub mod dimse;
pub mod ecg;
pub mod error;
pub mod http;
pub mod ids;
pub mod logging;
pub mod metrics;
pub mod network;
pub mod operator;
pub mod phi;
pub mod server;
pub mod signal;
pub mod state;
pub mod storage;
pub mod time;
pub mod upload;
pub mod viewer;
pub mod web;
