//! Rebuild when a migration is added: `sqlx::migrate!` embeds the files of
//! `migrations/` at compile time but cannot itself watch the directory on
//! stable Rust, so a new file would otherwise be missed until a clean build.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
