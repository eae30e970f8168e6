//! The service binary: `cargo run -p service` (configuration: the
//! environment; see the README).

#[tokio::main]
async fn main() {
    if let Err(error) = service::run_from_env().await {
        eprintln!("service: {error}");
        std::process::exit(1);
    }
}
