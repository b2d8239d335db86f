//! Shell completions and man pages, generated from the flag definitions.

use super::defs::Cli;
use crate::Error;

/// Completions for `shell` on stdout.
pub fn completions(shell: clap_complete::Shell) -> Result<(), Error> {
    let mut cmd = <Cli as clap::CommandFactory>::command();
    // Into a buffer first: clap_complete panics when its writer fails (`completions zsh | head -3`).
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "ticklake", &mut script);
    crate::output::print(String::from_utf8_lossy(&script).trim_end())
}

/// The man page on stdout, or one page per command into `dir`.
pub fn man(dir: Option<&std::path::Path>) -> Result<(), Error> {
    let cmd = <Cli as clap::CommandFactory>::command();
    let io = |e, what: &str| Error::Io { context: format!("writing the man page {what}"), source: e };
    match dir {
        None => {
            let mut out = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut out).map_err(|e| io(e, "to stdout"))?;
            crate::output::print(String::from_utf8_lossy(&out).trim_end())
        }
        Some(d) => {
            std::fs::create_dir_all(d).map_err(|e| io(e, &d.display().to_string()))?;
            clap_mangen::generate_to(cmd, d).map_err(|e| io(e, &d.display().to_string()))
        }
    }
}
