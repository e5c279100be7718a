//! The thread count setting takes effect: `TAPEGRAD_NUM_THREADS` at first use, then
//! `set_num_threads`, each changing how many parts a kernel splits into. Its own binary (one
//! process) because the setting is process-wide.

use std::collections::HashSet;
use std::sync::Mutex;
use tapegrad_kernels::threads::{num_threads, par_ranges, set_num_threads};

/// The ranges `par_ranges` hands out over `0..len` (sorted) and the threads that ran them.
fn split(len: usize) -> (Vec<std::ops::Range<usize>>, usize) {
    let seen = Mutex::new((Vec::new(), HashSet::new()));
    par_ranges(len, 1, 1, |r| {
        let mut s = seen.lock().unwrap();
        s.0.push(r);
        s.1.insert(std::thread::current().id());
    });
    let (mut ranges, threads) = seen.into_inner().unwrap();
    ranges.sort_by_key(|r| r.start);
    (ranges, threads.len())
}

#[test]
fn thread_count_setting_takes_effect() {
    // read once, at first use
    std::env::set_var("TAPEGRAD_NUM_THREADS", "3");
    assert_eq!(num_threads(), 3, "TAPEGRAD_NUM_THREADS=3 not honoured");
    let (ranges, threads) = split(300);
    assert_eq!(ranges, [0..100, 100..200, 200..300]);
    // part 0 on this thread, the others on pool workers (two of them may share one)
    assert!(threads >= 2, "three parts ran on {threads} thread(s)");

    set_num_threads(1);
    assert_eq!(num_threads(), 1);
    let (ranges, threads) = split(300);
    assert!(ranges.len() == 1 && ranges[0] == (0..300) && threads == 1, "{ranges:?} on {threads} thread(s)");

    set_num_threads(2);
    let (ranges, threads) = split(301);
    assert_eq!((ranges, threads), (vec![0..151, 151..301], 2));

    set_num_threads(0); // treated as 1
    assert_eq!(num_threads(), 1);
}
