//! pythond: runs DataKit `pythond` collector scripts in embedded CPython and
//! ships what they report to DataKit.
//!
//! Data flows one way: [`config`] → [`discover`] → [`python`] runtime →
//! [`point`] → [`lineproto`] → [`writer`] → DataKit.

pub mod config;
pub mod discover;
pub mod lineproto;
pub mod logs;
pub mod point;
pub mod python;
pub mod python_env;
pub mod scheduler;
pub mod sink;
pub mod spool;
pub mod supervisor;
pub mod testmode;
pub mod worker;
pub mod writer;
