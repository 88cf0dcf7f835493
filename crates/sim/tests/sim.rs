//! The simulated network in CI (issue 11): a fixed set of seeds, the committed regression seeds,
//! and the engine broken on purpose failing a committed seed the correct engine passes.

use sanjin_sim::{Config, regressions, run};

/// The seeds CI runs (debug build, well under a minute on the project's machine). Seeds that
/// failed once are in `regressions.txt`.
const CI_SEEDS: std::ops::Range<u64> = 10..40;

#[test]
fn issue11_simulated_network_fixed_seeds_hold_every_invariant() {
    let cfg = Config::default();
    let mut exchanges = 0;
    for seed in CI_SEEDS {
        let r = run(seed, &cfg).unwrap_or_else(|f| panic!("{f}"));
        exchanges += r.exchanges;
    }
    assert!(exchanges > 0);
}

#[test]
fn issue11_simulated_network_regression_seeds_pass() {
    let list = regressions(include_str!("regressions.txt"));
    assert!(!list.is_empty());
    for r in list {
        let out = run(r.seed, &Config::default());
        if r.known {
            let f = out.expect_err(&format!(
                "seed {} passes now: remove `known` from its line ({})",
                r.seed, r.why
            ));
            assert_eq!(f.seed, r.seed);
        } else {
            out.unwrap_or_else(|f| panic!("{f} (regression: {})", r.why));
        }
    }
}

/// The seed the broken engine fails (committed in `broken_seed.txt`).
fn broken_seed() -> u64 {
    include_str!("broken_seed.txt")
        .lines()
        .find_map(|l| l.split('#').next()?.trim().parse().ok())
        .expect("a seed in broken_seed.txt")
}

#[test]
fn issue11_the_broken_engine_fails_a_committed_seed_the_correct_one_passes() {
    let seed = broken_seed();
    run(seed, &Config::default()).unwrap_or_else(|f| panic!("the correct engine: {f}"));
    let broken = Config {
        broken: true,
        ..Config::default()
    };
    let failure = run(seed, &broken).expect_err("the broken engine must fail this seed");
    assert_eq!(failure.seed, seed);
    assert!(!failure.what.is_empty());
}

#[test]
fn issue11_a_seed_replays_identically() {
    let a = run(7, &Config::default()).unwrap();
    let b = run(7, &Config::default()).unwrap();
    assert_eq!(a, b);
}
