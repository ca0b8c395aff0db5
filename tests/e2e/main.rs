//! End-to-end tests of the `cdc` binary. Tests that need services read `CDC_TEST_PG_URL`,
//! `CDC_TEST_MYSQL_URL` and `CDC_TEST_KAFKA_BROKERS` (set by `scripts/services.sh up`).

mod common;

mod check_unreachable;
mod cli;
mod compat;
mod containers;
mod crash_resume;
mod http;
mod incremental;
mod kafka;
mod mysql;
mod outage;
mod outage_logs;
mod outside_connector;
mod postgres;
mod transaction_metadata;
mod transforms;
