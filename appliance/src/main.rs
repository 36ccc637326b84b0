//! The appliance binary: options, logs, signals. See the library's docs ([`appliance`]).

use appliance::cli::Options;
use appliance::Appliance;
use tracing::info;

/// The first of SIGTERM and SIGINT.
async fn signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers, only Ctrl-C through tokio's own.
        let _ = tokio::signal::ctrl_c().await;
        return "SIGINT";
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let opts = match Options::parse(std::env::args().skip(1), |k| std::env::var(k).ok()) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let appliance = match Appliance::start(opts).await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("appliance: {e}");
            std::process::exit(1);
        }
    };
    let why = signal().await;
    info!(signal = why, "signal received");
    appliance.shutdown(why);
    if let Err(e) = appliance.wait().await {
        eprintln!("appliance: shutdown: {e}");
        std::process::exit(1);
    }
}
