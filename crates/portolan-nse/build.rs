//! Links LPeg from Debian's lua-lpeg-dev (the static `liblua5.4-lpeg.a`), as Nmap's own Debian
//! build links the system's LPeg. LPeg's source is not part of this repository.
//!
//! `PORTOLAN_LPEG_LIB` names another folder holding `liblua5.4-lpeg.a`.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=PORTOLAN_LPEG_LIB");
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(d) = std::env::var_os("PORTOLAN_LPEG_LIB") {
        dirs.push(d.into());
    }
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    let multiarch = match arch.as_str() {
        "x86" => format!("i386-{os}-{env}"),
        "arm" => format!("arm-{os}-{env}eabihf"),
        other => format!("{other}-{os}-{env}"),
    };
    dirs.push(PathBuf::from(format!("/usr/lib/{multiarch}")));
    dirs.push(PathBuf::from("/usr/lib"));
    dirs.push(PathBuf::from("/usr/local/lib"));
    let found = dirs.iter().find(|d| d.join("liblua5.4-lpeg.a").is_file());
    match found {
        Some(dir) => {
            println!(
                "cargo:rerun-if-changed={}",
                dir.join("liblua5.4-lpeg.a").display()
            );
            println!("cargo:rustc-link-search=native={}", dir.display());
            println!("cargo:rustc-link-lib=static=lua5.4-lpeg");
        }
        None => {
            let looked: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
            panic!(
                "LPeg for Lua 5.4 (liblua5.4-lpeg.a) not found in {}.\n\
                 Install Debian's lua-lpeg-dev (scripts/install-build-deps.sh does), or set \
                 PORTOLAN_LPEG_LIB to the folder that holds it.",
                looked.join(", ")
            );
        }
    }
}
