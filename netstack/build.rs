//! Build script: does nothing unless the `dpdk` feature is on. With it,
//! compiles `csrc/dpdk_shim.c` (plain functions over DPDK's inline fast
//! path) and links DPDK as `pkg-config libdpdk` says.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_DPDK").is_some() {
        #[cfg(feature = "dpdk")]
        dpdk::build();
    }
}

#[cfg(feature = "dpdk")]
mod dpdk {
    use std::process::Command;

    const HINT: &str = "the `dpdk` feature needs DPDK's headers and pkg-config file: \
        install libdpdk-dev and pkg-config (scripts/setup.sh does)";

    fn pkg_config(args: &[&str]) -> Vec<String> {
        let out = match Command::new("pkg-config")
            .args(args)
            .arg("libdpdk")
            .output()
        {
            Ok(o) => o,
            Err(e) => fail(&format!("cannot run pkg-config ({e})")),
        };
        if !out.status.success() {
            fail(&format!(
                "pkg-config {} libdpdk failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    }

    fn fail(why: &str) -> ! {
        // A build script's panic message is what cargo shows; make it the
        // actionable one.
        panic!("\n\nplume-netstack: {why}\n{HINT}\n\n");
    }

    pub fn build() {
        println!("cargo:rerun-if-changed=csrc/dpdk_shim.c");
        println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
        let cflags = pkg_config(&["--cflags"]);
        let libs = pkg_config(&["--libs"]);

        let mut cc = cc::Build::new();
        cc.file("csrc/dpdk_shim.c").warnings(true);
        let mut it = cflags.iter();
        while let Some(f) = it.next() {
            if let Some(dir) = f.strip_prefix("-I") {
                cc.include(dir);
            } else if f == "-include" {
                // `-include rte_config.h` comes as two words.
                if let Some(h) = it.next() {
                    cc.flag("-include").flag(h);
                }
            } else {
                cc.flag(f);
            }
        }
        cc.compile("plume_dpdk_shim");

        // rustc-link-lib (not link-arg) so binaries of downstream crates
        // link DPDK too. Drivers (PMDs) are loaded at run time by the EAL
        // from Debian's plugin directory, so only the libraries are named.
        for f in &libs {
            if let Some(dir) = f.strip_prefix("-L") {
                println!("cargo:rustc-link-search=native={dir}");
            } else if let Some(lib) = f.strip_prefix("-l") {
                println!("cargo:rustc-link-lib=dylib={lib}");
            }
        }
    }
}
