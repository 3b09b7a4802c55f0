//! Replays the fuzz corpus (`fuzz/corpus/TARGET/`) and every crash or hang case found
//! (`fuzz/regressions/TARGET/`) through the same entry points libFuzzer drives, on stable:
//! each input must return without panicking, within a second.

use std::path::PathBuf;
use std::time::{Duration, Instant};

#[test]
fn corpus_and_regressions_replay_cleanly() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut replayed = 0;
    for (target, run) in netmgrd::fuzz::TARGETS {
        for kind in ["corpus", "regressions"] {
            let dir = root.join(kind).join(target);
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for entry in entries {
                let path = entry.expect("entry").path();
                if path.file_name().is_some_and(|n| n == ".gitkeep") {
                    continue;
                }
                // `make fuzz` may be rewriting the corpus meanwhile.
                let Ok(data) = std::fs::read(&path) else { continue };
                let t = Instant::now();
                run(&data);
                assert!(t.elapsed() < Duration::from_secs(1), "{} took {:?}", path.display(), t.elapsed());
                replayed += 1;
            }
        }
        assert!(root.join("corpus").join(target).is_dir(), "no corpus for {target}");
    }
    assert!(replayed >= 20, "only {replayed} inputs replayed");
}
