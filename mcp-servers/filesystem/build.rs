//! Sets `cfg(pinned_fd)` where `confine::Handle` can pin paths with `O_PATH` descriptors and
//! re-check them through `/proc/self/fd` (Linux on x86_64 and aarch64, whose open-flag values
//! the crate knows). Elsewhere the crate falls back to plain paths.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(pinned_fd)");
    println!("cargo::rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    if os == "linux" && matches!(arch.as_str(), "x86_64" | "aarch64") {
        println!("cargo::rustc-cfg=pinned_fd");
    }
}
