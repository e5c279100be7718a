//! The examples' command lines, one way for all of them: `-h` or `--help` anywhere prints
//! the usage and exits 0; a value that does not parse, a missing value or an argument the
//! example does not take prints what is wrong, naming it, then the usage, and exits 2,
//! before any work starts.
#![allow(dead_code)] // each example uses the part it needs

use std::str::FromStr;

/// The arguments after the program name, with the example's usage line.
pub struct Cli {
    usage: &'static str,
    args: Vec<String>,
}

impl Cli {
    /// The process's arguments; prints `usage` and exits 0 on `-h` or `--help`.
    pub fn new(usage: &'static str) -> Cli {
        let args: Vec<String> = std::env::args().skip(1).collect();
        if args.iter().any(|a| a == "-h" || a == "--help") {
            println!("{usage}");
            std::process::exit(0);
        }
        Cli { usage, args }
    }

    /// The arguments, for an example that parses them itself (`run_ptx`).
    pub fn into_args(self) -> Vec<String> {
        self.args
    }

    /// Prints `msg` and the usage, and exits 2.
    pub fn fail(&self, msg: &str) -> ! {
        eprintln!("error: {msg}");
        eprintln!("{}", self.usage);
        std::process::exit(2);
    }

    /// Removes `flag` (a switch without a value) and says whether it was there.
    pub fn switch(&mut self, flag: &str) -> bool {
        let before = self.args.len();
        self.args.retain(|a| a != flag);
        self.args.len() != before
    }

    /// Removes `flag VALUE` and parses VALUE (`what` says what it must be, for the error);
    /// None when the flag is absent.
    pub fn value<T: FromStr>(&mut self, flag: &str, what: &str) -> Option<T> {
        let i = self.args.iter().position(|a| a == flag)?;
        let Some(v) = self.args.get(i + 1).cloned() else { self.fail(&format!("{flag} needs a value")) };
        self.args.drain(i..i + 2);
        Some(v.parse().unwrap_or_else(|_| self.fail(&format!("{flag}: `{v}` is not {what}"))))
    }

    /// The positional arguments left once the flags are taken, read in order by
    /// [`Positionals::next`]. Fails on an argument starting with `--` (a flag the example
    /// does not take, or one given twice) or on more than `max` of them.
    pub fn positionals(&self, max: usize) -> Positionals<'_> {
        if let Some(f) = self.args.iter().find(|a| a.starts_with("--")) {
            self.fail(&format!("unknown or repeated flag `{f}`"));
        }
        if let Some(extra) = self.args.get(max) {
            self.fail(&format!("unexpected argument `{extra}` (at most {max} positional arguments)"));
        }
        Positionals { cli: self, next: 0 }
    }
}

/// [`Cli::positionals`], read in order.
pub struct Positionals<'a> {
    cli: &'a Cli,
    next: usize,
}

impl Positionals<'_> {
    /// The next positional argument parsed (`name` and `what` for the error), or `default`
    /// when there are no more.
    pub fn next<T: FromStr>(&mut self, name: &str, what: &str, default: T) -> T {
        let Some(v) = self.cli.args.get(self.next) else { return default };
        self.next += 1;
        v.parse().unwrap_or_else(|_| self.cli.fail(&format!("{name}: `{v}` is not {what}")))
    }
}
