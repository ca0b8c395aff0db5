//! Integration tests against a real MariaDB (`CDC_TEST_MYSQL_URL`, from `scripts/services.sh up`).
//! Each test uses its own database; the binlog is shared, so sources filter by database.

mod common;

mod bench;
mod checks;
mod compressed;
mod ddl;
mod fuzz_corpus;
mod gtid_skip;
mod inet;
mod private_server;
mod resume;
mod schema_history;
mod snapshot;
mod statement;
mod stream;
mod tracker;
mod types;
mod versioned;
mod xa;
mod xa_fresh;

/// `--features bench-mimalloc`: measure with mimalloc instead of the system allocator.
#[cfg(feature = "bench-mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
