//! `claimcheck check-config [FILE]`: the layered config (file, then `CLAIMCHECK_*`
//! environment) validated as `serve` would, and printed as TOML with secrets redacted, so a
//! deployment can be checked without starting it.

use std::io::Write;

use anyhow::Context;

#[derive(Debug, clap::Args)]
pub struct CheckConfigArgs {
    /// The TOML config file; without it, the defaults under the environment are checked.
    #[arg(value_name = "FILE")]
    pub file: Option<std::path::PathBuf>,
}

pub fn run(args: CheckConfigArgs) -> anyhow::Result<()> {
    let layered = super::load_raw(args.file.as_deref())?;
    let checked = crate::config::Config::from_raw(&layered.raw);
    let checked = match &args.file {
        Some(p) => checked.with_context(|| format!("in {}", p.display())),
        None => checked.map_err(anyhow::Error::from),
    };
    checked?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "# effective configuration: {} under the CLAIMCHECK_* environment; secrets redacted",
        args.file
            .as_ref()
            .map_or_else(|| "the defaults".to_owned(), |p| p.display().to_string())
    )?;
    for var in &layered.unknown_env {
        writeln!(out, "# ignored: {var} names no config key")?;
    }
    out.write_all(crate::config::layers::redacted_toml(&layered.raw).as_bytes())?;
    Ok(())
}
