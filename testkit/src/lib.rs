//! A fake DataKit HTTP API for tests and benches.
