//! Seeing a running pythond: the status endpoint ([`server`], `GET
//! /status` and `GET /metrics` ([`metrics`])) and the `pythond status`
//! command that reads it ([`client`]).

pub mod client;
pub mod metrics;
pub mod server;
