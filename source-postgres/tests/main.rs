//! Integration tests against a real PostgreSQL (`CDC_TEST_PG_URL`); each test uses a database,
//! slot and publication of its own.

mod common;
mod fuzz_corpus;
mod ops;
mod partitioned_tables;
mod restart;
mod shape;
mod slot;
mod snapshot;
mod tls;
mod types;
