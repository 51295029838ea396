//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/*`) through the same checks the
//! cargo-fuzz targets run ([`rollcall::fuzzing`]), so every seed and every past crash stays a
//! regression test on each `cargo test`, with or without cargo-fuzz installed.

use std::path::Path;
use std::time::{Duration, Instant};

use rollcall::fuzzing::TARGETS;

/// Every target has a corpus, and every input in it passes its target's checks.
#[test]
fn committed_corpus_passes_every_check() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let deadline = Instant::now() + Duration::from_secs(120);
    for (name, check) in TARGETS {
        let dir = root.join(name);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("readable entry").path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{name} has no corpus");
        for file in files {
            let data = std::fs::read(&file).expect("readable corpus file");
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(
                outcome.is_ok(),
                "{name}: {} fails its check (input: {:?})",
                file.display(),
                String::from_utf8_lossy(&data)
            );
            assert!(Instant::now() < deadline, "corpus replay took too long");
        }
    }
}
