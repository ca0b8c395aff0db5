//! Integration tests of the pipeline runtime with in-memory, fault-injecting connectors.

mod fuzz_corpus;
mod runtime;
