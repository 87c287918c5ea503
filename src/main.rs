//! The `terraform-provider-timescaledb` executable: a Terraform plugin.

use std::process::ExitCode;

use tsdb_provider::plugin::{self, Mode, MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE};

const USAGE: &str = "terraform-provider-timescaledb: a Terraform/OpenTofu provider plugin.

This program is started by Terraform; it is not meant to be run by hand.
Install it (make install) and use it from a configuration:

    terraform {
      required_providers {
        timescaledb = { source = \"local/timescaledb\" }
      }
    }

Options:
    --debug     serve without Terraform and print a TF_REATTACH_PROVIDERS value
    --docs DIR  write the registry documentation for the current schema to DIR
    --version   print the version
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = match args.first().map(String::as_str) {
        Some("--version") => {
            println!("terraform-provider-timescaledb {}", tsdb_provider::VERSION);
            return ExitCode::SUCCESS;
        }
        Some("--docs") => {
            let Some(dir) = args.get(1) else {
                eprintln!("--docs needs a directory");
                return ExitCode::from(2);
            };
            return match tsdb_provider::docs::write_all(std::path::Path::new(dir)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("writing docs: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        Some("--debug") => Mode::Debug,
        Some("--help" | "-h") => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => Mode::Managed,
    };
    if mode == Mode::Managed && std::env::var(MAGIC_COOKIE_KEY).as_deref() != Ok(MAGIC_COOKIE_VALUE)
    {
        eprint!("{USAGE}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(plugin::serve(mode)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("terraform-provider-timescaledb: {e}");
            ExitCode::FAILURE
        }
    }
}
