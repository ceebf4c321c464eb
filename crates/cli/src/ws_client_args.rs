//! The `--websocket[=PATH]` and `--header` flags of `stress` and `send`, shared, and what they
//! mean as [`WsOptions`].

use clap::Args;
use ringport_stress::ws::options::WsOptions;

/// Flags for speaking WebSocket to the server.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "WebSocket")]
pub struct WsClientArgs {
    /// Speak WebSocket: upgrade each connection with a GET of PATH [default: /], then send
    /// every message as one masked WebSocket message and verify each echo as one message. With
    /// --tls, wss. A server that refuses the upgrade stops the run before any load.
    #[arg(
        long,
        value_name = "PATH",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "/"
    )]
    pub websocket: Option<String>,
    /// An extra header of the upgrade request, `'Name: value'` (e.g. an Origin or an
    /// Authorization); repeat for several.
    #[arg(long = "header", value_name = "'NAME: VALUE'", requires = "websocket")]
    pub headers: Vec<String>,
}

impl WsClientArgs {
    /// The options, or `None` without --websocket.
    ///
    /// # Errors
    ///
    /// A path or a header that cannot be sent, in one line.
    pub fn options(&self) -> anyhow::Result<Option<WsOptions>> {
        self.websocket
            .as_deref()
            .map(|path| WsOptions::new(Some(path), &self.headers).map_err(anyhow::Error::msg))
            .transpose()
    }
}
