//! The release packages install: `tests/package.sh` (what `make release`
//! runs) packs the provider; a packed filesystem mirror serves it to every
//! terraform release on the machine, which records the package's hash in its
//! lock file and starts the plugin.

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::harness::{terraform_bins, ROOT};

const NAME: &str = "terraform-provider-timescaledb";

/// Terraform's `h1:` package hash: SHA-256 over the sorted lines
/// `<sha256 hex>  <file name>` of every file in the zip.
fn h1(zip: &Path) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(
            "import sys, zipfile, hashlib\n\
             z = zipfile.ZipFile(sys.argv[1])\n\
             for n in sorted(i.filename for i in z.infolist() if not i.is_dir()):\n\
             \x20   print(hashlib.sha256(z.read(n)).hexdigest() + '  ' + n)\n",
        )
        .arg(zip)
        .output()
        .unwrap();
    assert!(out.status.success());
    format!(
        "h1:{}",
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&out.stdout))
    )
}

fn sha256_hex(p: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(p).unwrap()))
}

#[test]
fn release_packages_install_from_a_packed_mirror_with_verified_hashes() {
    let version = env!("CARGO_PKG_VERSION");
    let work = tempfile::tempdir().unwrap();
    let packages = work.path().join("packages");
    let out = Command::new(Path::new(ROOT).join("tests/package.sh"))
        .arg(env!("CARGO_BIN_EXE_terraform-provider-timescaledb"))
        .args([version, "linux_amd64"])
        .arg(&packages)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let zip_name = format!("{NAME}_{version}_linux_amd64.zip");
    let zip = packages.join(&zip_name);
    let manifest = packages.join(format!("{NAME}_{version}_manifest.json"));
    let manifest_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    assert_eq!(
        manifest_json["metadata"]["protocol_versions"],
        serde_json::json!(["6.0"])
    );
    let sums =
        std::fs::read_to_string(packages.join(format!("{NAME}_{version}_SHA256SUMS"))).unwrap();
    for file in [&zip, &manifest] {
        let line = format!(
            "{}  {}",
            sha256_hex(file),
            file.file_name().unwrap().to_string_lossy()
        );
        assert!(
            sums.lines().any(|l| l == line),
            "{line} not in SHA256SUMS:\n{sums}"
        );
    }

    // A packed mirror: HOSTNAME/NAMESPACE/TYPE/<the registry's zip>.
    let mirror = work.path().join("mirror");
    let dir = mirror.join("registry.terraform.io/example/timescaledb");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(&zip, dir.join(&zip_name)).unwrap();
    let rc = work.path().join("terraformrc");
    std::fs::write(
        &rc,
        format!(
            "provider_installation {{\n  filesystem_mirror {{\n    path = \"{}\"\n  }}\n}}\n",
            mirror.display()
        ),
    )
    .unwrap();
    let expected = h1(&zip);
    let bins = terraform_bins();
    assert!(!bins.is_empty());
    for bin in bins {
        let project = tempfile::tempdir().unwrap();
        std::fs::write(
            project.path().join("main.tf"),
            format!(
                "terraform {{\n  required_providers {{\n    timescaledb = {{\n      source  = \"example/timescaledb\"\n      version = \"{version}\"\n    }}\n  }}\n}}\n"
            ),
        )
        .unwrap();
        let run = |args: &[&str]| {
            let out = Command::new(&bin)
                .args(args)
                .current_dir(project.path())
                .env("TF_CLI_CONFIG_FILE", &rc)
                .env("TF_IN_AUTOMATION", "1")
                .env("CHECKPOINT_DISABLE", "1")
                .output()
                .unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(out.status.success(), "{} {args:?}:\n{text}", bin.display());
            text
        };
        run(&["init", "-input=false", "-no-color"]);
        let lock = std::fs::read_to_string(project.path().join(".terraform.lock.hcl")).unwrap();
        assert!(
            lock.contains(&format!("= \"{version}\"")) && lock.contains(&expected),
            "{}: the lock file does not hold {expected}:\n{lock}",
            bin.display()
        );
        // The lock file's hash is checked again at the next init, and the
        // installed plugin starts and serves its schema.
        run(&["init", "-input=false", "-no-color"]);
        let schema = run(&["providers", "schema", "-json"]);
        assert!(
            schema.contains("timescaledb_hba_rule"),
            "{}: {schema}",
            bin.display()
        );
    }
}

/// A build needs the Rust toolchain and nothing else: a clean clone builds
/// with `cargo build --locked` while `protoc` points nowhere (the `.proto`
/// files are parsed in Rust), and what it builds answers as the provider.
#[test]
fn a_clean_clone_builds_with_cargo_alone() {
    let work = tempfile::tempdir().unwrap();
    let clone = work.path().join("clone");
    let out = Command::new("git")
        .args(["clone", "--quiet", "--no-hardlinks", ROOT])
        .arg(&clone)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Its own target directory, kept between runs: only the first run
    // builds every dependency.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cargo-alone");
    let out = Command::new(env!("CARGO"))
        .args(["build", "--locked", "--offline"])
        .current_dir(&clone)
        .env("CARGO_TARGET_DIR", &target)
        .env("PROTOC", "/nonexistent/protoc")
        .env_remove("PROTOC_INCLUDE")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo build failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let docs = work.path().join("docs");
    let out = Command::new(target.join("debug").join(NAME))
        .arg("--docs")
        .arg(&docs)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(docs.join("resources/hba_rule.md").exists());
}
