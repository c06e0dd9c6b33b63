//! `claimcheck completions SHELL` and `claimcheck man`: shell completions and a man page
//! generated from the same clap definitions that parse the flags, so they cannot drift.
//!   claimcheck completions bash > /etc/bash_completion.d/claimcheck
//!   claimcheck man > /usr/local/share/man/man1/claimcheck.1

use std::io::Write;

use clap::CommandFactory;

#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

pub fn completions(args: CompletionsArgs) -> anyhow::Result<()> {
    let mut cmd = super::Cli::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(args.shell, &mut cmd, "claimcheck", &mut out);
    out.flush()?;
    Ok(())
}

/// The page of `claimcheck` itself, then one section per subcommand with its options.
pub fn man() -> anyhow::Result<()> {
    let cmd = super::Cli::command();
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut page)?;
    for sub in cmd.get_subcommands() {
        let title = format!(".SH \"CLAIMCHECK {}\"\n", sub.get_name().to_uppercase());
        page.extend_from_slice(title.as_bytes());
        let man = clap_mangen::Man::new(sub.clone());
        man.render_description_section(&mut page)?;
        man.render_options_section(&mut page)?;
    }
    std::io::stdout().lock().write_all(&page)?;
    Ok(())
}
