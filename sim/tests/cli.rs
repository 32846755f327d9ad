//! `plume sim` (the `plume-sim` binary) as a user runs it: a replay prints
//! the same trace twice, a failing seed gives its replay command and exit
//! code 2, bad flags are clear errors.

use std::process::Command;

fn sim(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_plume-sim"))
        .args(args)
        .output()
        .expect("plume-sim runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn replay_prints_the_same_trace_twice() {
    let args = [
        "--validators",
        "7",
        "--byzantine",
        "2",
        "--strategy",
        "twins",
        "--replay",
        "41",
    ];
    let (a, out1, _) = sim(&args);
    let (b, out2, _) = sim(&args);
    assert_eq!((a, b), (0, 0), "{out1}");
    assert!(out1.contains("trace "), "{out1}");
    assert!(out1.contains("Twin"), "{out1}");
    assert_eq!(out1, out2);
}

#[test]
fn a_caught_mutation_prints_its_replay_and_exits_2() {
    let (code, out, _) = sim(&[
        "--seeds",
        "50",
        "--validators",
        "4",
        "--byzantine",
        "1",
        "--mutation",
        "persist-nothing",
    ]);
    assert_eq!(code, 2, "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("replay: plume sim"))
        .expect("a replay line");
    assert!(
        line.contains("--mutation persist-nothing --replay "),
        "{line}"
    );
    assert!(out.contains("seeds/s"), "{out}");
    // The replay command finds the same violation.
    let seed = line.rsplit(' ').next().unwrap();
    let (code, out, _) = sim(&[
        "--validators",
        "4",
        "--byzantine",
        "1",
        "--mutation",
        "persist-nothing",
        "--replay",
        seed,
    ]);
    assert_eq!(code, 2);
    assert!(out.contains("VIOLATION Equivocation"), "{out}");
}

#[test]
fn bad_flags_are_clear_errors() {
    let (code, _, err) = sim(&["--byzantine", "1", "--strategy", "nonsense"]);
    assert_eq!(code, 1);
    assert!(err.contains("unknown --strategy \"nonsense\""), "{err}");
    assert!(err.contains("forged-cert"), "{err}");
    let (code, _, err) = sim(&["--strategy", "twins"]);
    assert_eq!(code, 1);
    assert!(err.contains("--byzantine 1 or more"), "{err}");
    let (code, _, err) = sim(&["--validators", "4", "--byzantine", "2"]);
    assert_eq!(code, 1);
    assert!(err.contains("exceeds f = 1"), "{err}");
}
