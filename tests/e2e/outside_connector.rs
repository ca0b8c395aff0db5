//! The example of an outside crate adding its own connector (examples/custom_connector.rs) builds
//! and runs on the same runtime.

use std::process::Command;

use crate::common::{read_jsonl, Workdir};

#[test]
fn the_custom_connector_example_builds_and_runs() {
    // GIVEN the example built as its own binary
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = env!("CARGO_MANIFEST_DIR");
    let build = Command::new(&cargo)
        .args(["build", "--quiet", "--example", "custom_connector"])
        .current_dir(root)
        .status()
        .expect("cargo runs");
    assert!(build.success());
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::path::Path::new(root).join("target"));
    let exe = target.join("debug/examples/custom_connector");

    // WHEN it runs its own `countdown` source into the built-in file sink
    let w = Workdir::new();
    let config = w.write(
        "c.yaml",
        "name: countdown\nsource: { type: countdown, from: 5 }\n\
         sink: { type: file, path: '{dir}/out.jsonl' }\noffsets: { type: file, path: '{dir}/c.offsets' }\n",
    );
    let out = Command::new(&exe)
        .args(["run", "-c", config.to_str().unwrap()])
        .output()
        .expect("example runs");

    // THEN it finishes and its events are in the Debezium envelope with their keys
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = read_jsonl(&w.path("out.jsonl"));
    let ns: Vec<u64> = lines
        .iter()
        .map(|l| l["key"]["n"].as_u64().unwrap())
        .collect();
    assert_eq!(ns, vec![5, 4, 3, 2, 1]);
    assert_eq!(lines[0]["value"]["op"], "c");
    assert_eq!(lines[0]["value"]["source"]["table"], "countdown");

    // AND `check` and `--help` come from cdc too
    let help = Command::new(&exe).arg("--help").output().unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("offsets"));
}
