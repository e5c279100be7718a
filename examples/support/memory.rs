//! The examples' memory report (`#[path]`-included; not an example itself).

/// The CPU tensor cache (`autograd::alloc`), and the process's resident memory now and
/// at its peak (Linux; "n/a" elsewhere).
pub fn memory_line() -> String {
    let s = tapegrad::autograd::alloc::pool_stats();
    let mib = |b: usize| b as f64 / (1 << 20) as f64;
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        let line = status.lines().find(|l| l.starts_with(name));
        line.map_or("n/a".to_string(), |l| l[name.len()..].trim().to_string())
    };
    let (rss, hwm) = (field("VmRSS:"), field("VmHWM:"));
    // minor page faults so far: field 10 of /proc/self/stat (after the command's ")")
    let faults = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|st| {
            st.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(7).map(String::from))
        })
        .unwrap_or_else(|| "n/a".into());
    format!(
        "tensor memory: {:.0} MiB in use, {:.0} MiB cached, {} blocks allocated, {} returned; \
         RSS {rss} (peak {hwm}), {faults} page faults so far",
        mib(s.in_use),
        mib(s.cached),
        s.allocs,
        s.frees
    )
}
