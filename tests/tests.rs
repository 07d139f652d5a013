//! End-to-end tests of the `pythond` binary: real processes, real embedded
//! CPython on real script files, a real HTTP server on 127.0.0.1. One test
//! binary (modules below) keeps link time down.

mod fixtures;
mod util;

mod check;
mod crashes;
mod faults;
mod launch;
mod layout;
mod names;
mod paths;
mod promises;
mod property;
mod python_env;
mod reload;
mod reload_errors;
mod run;
mod shutdown;
mod status;
mod status_endpoint;
mod symlinks;
mod testmode;
