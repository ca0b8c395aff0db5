//! Configuration loading and the command line, through the real binary.

use crate::common::{cdc, cdc_output, Workdir};

#[test]
fn every_example_config_loads_and_builds_its_connectors() {
    // GIVEN every file in configs/
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let registry = cdc::registry();
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if !matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            continue;
        }
        n += 1;
        // WHEN it is loaded and its connectors are built (without connecting)
        let config = cdc::connector_core::config::load(&path)
            .unwrap_or_else(|e| panic!("{}: {}", path.display(), e.report()));
        let ctx = cdc::connector_core::Context::new(config.name.as_str());
        // THEN every section names a known connector with valid settings
        let what = |e: cdc::connector_core::Error| format!("{}: {}", path.display(), e.report());
        registry
            .build_source(&config.source, &ctx)
            .map_err(what)
            .unwrap();
        registry
            .build_sink(&config.sink, &ctx)
            .map_err(what)
            .unwrap();
        registry
            .build_offset_store(&config.offsets, &ctx)
            .map_err(what)
            .unwrap();
    }
    assert!(n >= 2, "configs/ holds example files");
}

#[test]
fn config_errors_name_the_file_the_key_path_and_what_was_expected() {
    let w = Workdir::new();
    // GIVEN a generator whose rate is not a number
    let bad = w.write(
        "bad.yaml",
        "name: t\nsource: { type: generator, rate_per_sec: fast }\nsink: { type: stdout }\n",
    );
    // WHEN checked
    let out = cdc_output(&["check", "-c", bad.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    // THEN the message names the key path, what was expected and the file
    assert!(!out.status.success());
    assert!(stdout.contains("key `source.rate_per_sec`"), "{stdout}");
    assert!(stdout.contains("expected u64"), "{stdout}");
    assert!(stdout.contains("bad.yaml"), "{stdout}");

    // GIVEN an unknown key in a connector section
    let typo = w.write(
        "typo.yaml",
        "name: t\nsource: { type: generator }\nsink: { type: file, pth: /tmp/x }\n",
    );
    let out = cdc_output(&["run", "-c", typo.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // THEN run refuses it with exit code 2, naming the key
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("pth"), "{stderr}");
    assert!(stderr.contains("typo.yaml"), "{stderr}");

    // GIVEN an unknown connector type
    let unknown = w.write(
        "unknown.yaml",
        "name: t\nsource: { type: oracle }\nsink: { type: stdout }\n",
    );
    let out = cdc_output(&["run", "-c", unknown.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("key `source.type`"), "{stderr}");
    assert!(
        stderr.contains("generator"),
        "lists the known types: {stderr}"
    );

    // GIVEN a missing file
    let out = cdc_output(&["run", "-c", "/nonexistent/cdc.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/cdc.yaml"));
}

#[test]
fn environment_variables_override_the_file_and_unrelated_ones_are_ignored() {
    let w = Workdir::new();
    // GIVEN a config with a limit of 5 events into a file
    let config = w.write(
        "env.yaml",
        "name: envtest\nsource: { type: generator, rate_per_sec: 0, limit: 5 }\n\
         sink: { type: file, path: '{dir}/out.jsonl' }\noffsets: { type: file, path: '{dir}/o.offsets' }\n",
    );
    // WHEN run with CDC_SOURCE__LIMIT=7 and an unrelated CDC_ variable in the environment
    let out = cdc()
        .args(["run", "-c", config.to_str().unwrap()])
        .env("CDC_SOURCE__LIMIT", "7")
        .env("CDC_TEST_SOMETHING_ELSE", "x")
        .output()
        .unwrap();
    // THEN the environment wins and the run finishes
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(crate::common::read_jsonl(&w.path("out.jsonl")).len(), 7);

    // WHEN an environment variable carries a bad value
    let out = cdc()
        .args(["check", "-c", config.to_str().unwrap()])
        .env("CDC_SOURCE__RATE_PER_SEC", "-3")
        .output()
        .unwrap();
    // THEN the error names the variable
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(text.contains("CDC_SOURCE__RATE_PER_SEC"), "{text}");
}

#[test]
fn check_reports_each_precondition_and_offsets_commands_manage_the_position() {
    let w = Workdir::new();
    let config = w.write(
        "c.yaml",
        "name: offs\nsource: { type: generator, rate_per_sec: 0, limit: 10 }\n\
         sink: { type: file, path: '{dir}/out.jsonl' }\noffsets: { type: file, path: '{dir}/offs.offsets' }\n",
    );
    let c = config.to_str().unwrap();
    let out = cdc_output(&["check", "-c", c]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("[  ok] generator"), "{text}");
    assert!(text.contains("all checks passed"), "{text}");

    // WHEN the pipeline runs to its limit, `offsets show` prints the last position
    assert!(cdc_output(&["run", "-c", c]).status.success());
    let show = cdc_output(&["offsets", "show", "-c", c]);
    assert_eq!(String::from_utf8_lossy(&show.stdout).trim(), "offs\t9");

    // WHEN set to 4 and run again with a higher limit, it resumes at event 5
    assert!(cdc_output(&["offsets", "set", "-c", c, "--position", "4"])
        .status
        .success());
    let out = cdc()
        .args(["run", "-c", c])
        .env("CDC_SOURCE__LIMIT", "12")
        .output()
        .unwrap();
    assert!(out.status.success());
    let counts = crate::common::generator_counts(&w.path("out.jsonl"));
    assert_eq!(counts.len(), 12);
    assert_eq!(counts[&5], 2, "5..9 written again after `offsets set 4`");
    assert_eq!(counts[&4], 1);
    assert_eq!(counts[&11], 1);

    // WHEN reset without --yes it refuses; with --yes the position is gone
    assert_eq!(
        cdc_output(&["offsets", "reset", "-c", c]).status.code(),
        Some(2)
    );
    assert!(cdc_output(&["offsets", "reset", "-c", c, "--yes"])
        .status
        .success());
    let show = cdc_output(&["offsets", "show", "-c", c]);
    assert_eq!(String::from_utf8_lossy(&show.stdout).trim(), "offs\t(none)");
}
