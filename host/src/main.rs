use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = bot_bottle::cli::Cli::parse();
    match bot_bottle::app::run(cli) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
