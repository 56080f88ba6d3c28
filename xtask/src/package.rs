//! Builds the npm package: the wasm client with the size profile, wasm-bindgen's JS glue,
//! `wasm-opt -Oz`, then the JavaScript (`npm/src/` and the glue) bundled by esbuild and
//! minified by terser into `npm/dist/index.js`, then `npm pack`. Also copies it to `www/pkg` for the
//! demo.

use std::path::{Path, PathBuf};

use crate::cmd::{self, TaskError};
use crate::setup;

/// Where the package template and its build output live.
pub(crate) const PACKAGE_DIR: &str = "wasm-client/npm";

/// The package's promise (issue 11): wasm and JavaScript together, `gzip -9`, at most 64 KiB.
pub(crate) const SIZE_BUDGET: u64 = 64 * 1024;

/// Sizes of the built package, in bytes.
pub(crate) struct PackageSizes {
    /// The optimised `.wasm`.
    pub(crate) wasm: u64,
    /// The bundled JavaScript.
    pub(crate) js: u64,
    /// wasm + JS, gzipped.
    pub(crate) gzipped: u64,
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

fn gzip_size(paths: &[PathBuf]) -> Result<u64, TaskError> {
    let mut total = 0;
    for path in paths {
        let line = format!("gzip -9 -c {}", path.display());
        let output = std::process::Command::new("gzip")
            .args(["-9", "-c"])
            .arg(path)
            .output()
            .map_err(|source| TaskError::Spawn {
                command: line,
                source,
            })?;
        total += output.stdout.len() as u64;
    }
    Ok(total)
}

/// Builds the package; returns the path of the `npm pack` tarball and the sizes.
pub(crate) fn build() -> Result<(PathBuf, PackageSizes), TaskError> {
    setup::wasm_target()?;
    setup::wasm_bindgen_cli()?;
    setup::npm_packages(PACKAGE_DIR)?;
    let root = cmd::workspace_root();
    let package = root.join(PACKAGE_DIR);
    let dist = package.join("dist");
    cmd::run(&mut cmd::command(
        "cargo",
        &[
            "build",
            "--package",
            "tabmq-client",
            "--target",
            "wasm32-unknown-unknown",
            "--profile",
            "wasm-release",
        ],
    ))?;
    let wasm = root.join("target/wasm32-unknown-unknown/wasm-release/tabmq_client.wasm");
    cmd::run(&mut cmd::command(
        "wasm-bindgen",
        &[
            "--target",
            "web",
            "--no-typescript",
            "--out-dir",
            &dist.to_string_lossy(),
            &wasm.to_string_lossy(),
        ],
    ))?;
    let bg = dist.join("tabmq_client_bg.wasm");
    let wasm_opt = package.join("node_modules/.bin/wasm-opt");
    cmd::run(&mut cmd::command(
        &wasm_opt.to_string_lossy(),
        &[
            "-Oz",
            // Runs the passes again while they still shrink the module.
            "--converge",
            // Rust code never traps implicitly (its bounds checks are explicit), so loads
            // may move.
            "--ignore-implicit-traps",
            // rustc links the stack first: it grows down from 1 MiB towards 0, so the
            // lowest KiB is never used, and constant addresses fold into loads and stores.
            "--low-memory-unused",
            "--strip-debug",
            "--strip-producers",
            "--enable-bulk-memory",
            "--enable-nontrapping-float-to-int",
            "--enable-sign-ext",
            "--enable-mutable-globals",
            "--enable-reference-types",
            "--enable-multivalue",
            "-o",
            &bg.to_string_lossy(),
            &bg.to_string_lossy(),
        ],
    ))?;
    // One module, minified like the bundles it is compared with (terser: 3 % smaller
    // than esbuild's own minifier here).
    let bundle = dist.join("index.js");
    let esbuild = package.join("node_modules/.bin/esbuild");
    cmd::run(&mut cmd::command(
        &esbuild.to_string_lossy(),
        &[
            &package.join("src/index.js").to_string_lossy(),
            "--bundle",
            "--format=esm",
            "--log-level=warning",
            &format!("--outfile={}", bundle.display()),
        ],
    ))?;
    let terser = package.join("node_modules/.bin/terser");
    cmd::run(&mut cmd::command(
        &terser.to_string_lossy(),
        &[
            &bundle.to_string_lossy(),
            "--module",
            "--compress",
            "passes=3",
            "--mangle",
            "--output",
            &bundle.to_string_lossy(),
        ],
    ))?;
    let js = [bundle];
    let sizes = PackageSizes {
        wasm: file_size(&bg),
        js: js.iter().map(|p| file_size(p)).sum(),
        gzipped: gzip_size(&[&js[..], std::slice::from_ref(&bg)].concat())?,
    };
    let pkg = root.join("www/pkg");
    // Emptied first: nothing of an older layout may linger in the demo.
    if pkg.exists() {
        std::fs::remove_dir_all(&pkg).map_err(|e| TaskError::Check(format!("cannot empty www/pkg: {e}")))?;
    }
    std::fs::create_dir_all(&pkg).map_err(|e| TaskError::Check(format!("cannot create www/pkg: {e}")))?;
    copy(&package.join("index.d.ts"), &pkg.join("index.d.ts"))?;
    for file in js.iter().chain([&bg]) {
        copy(file, &pkg.join(file.file_name().unwrap_or_default()))?;
    }
    let mut pack = cmd::command(
        "npm",
        &[
            "pack",
            "--pack-destination",
            &root.join("target").to_string_lossy(),
        ],
    );
    pack.current_dir(&package);
    let tarball = cmd::output(&mut pack)?;
    let tarball = root
        .join("target")
        .join(tarball.lines().last().unwrap_or_default().trim());
    eprintln!(
        "==> npm package {}: wasm {} B, JS {} B, {} B gzipped",
        tarball.display(),
        sizes.wasm,
        sizes.js,
        sizes.gzipped
    );
    Ok((tarball, sizes))
}

/// Fails when the package is over [`SIZE_BUDGET`], naming both figures.
pub(crate) fn check_budget(sizes: &PackageSizes) -> Result<(), TaskError> {
    if sizes.gzipped > SIZE_BUDGET {
        return Err(TaskError::Check(format!(
            "the npm package is {} B gzipped, over its budget of {SIZE_BUDGET} B (64 KiB)",
            sizes.gzipped
        )));
    }
    Ok(())
}

fn copy(from: &Path, to: &Path) -> Result<(), TaskError> {
    std::fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| TaskError::Check(format!("cannot copy {} to {}: {e}", from.display(), to.display())))
}
