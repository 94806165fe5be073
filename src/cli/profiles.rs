//! Arguments of `tune profiles`, and the role value shared by check, apply and profiles.

use clap::{Args, Subcommand, ValueEnum};

#[derive(Debug, Clone, Args)]
pub struct ProfilesArgs {
    #[command(subcommand)]
    pub action: ProfilesAction,
}

#[derive(Debug, Clone, Subcommand)]
pub enum ProfilesAction {
    /// List the shipped profiles and those in /etc/tune/profiles/.
    List,
    /// Print a profile fully resolved: inheritance flattened, formulas evaluated.
    Show {
        /// Profile name or path to a TOML file.
        #[arg(value_name = "NAME|PATH")]
        name: String,
    },
}

/// What a host does with its connections; decides how many sockets and ports a connection costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Accepts connections: one socket per connection.
    Server,
    /// Opens connections (a load-generating host): one socket and one ephemeral port per connection.
    Client,
    /// Both ends on this host: two sockets per connection, and source addresses for the ports.
    Loopback,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Server => "server",
            Role::Client => "client",
            Role::Loopback => "loopback",
        }
    }

    /// Sockets (file descriptors) this host holds per connection: two when both ends are here.
    pub fn sockets_per_connection(self) -> u64 {
        match self {
            Role::Server | Role::Client => 1,
            Role::Loopback => 2,
        }
    }

    /// Does this host open connections, so that ephemeral ports and source addresses count?
    pub fn uses_ports(self) -> bool {
        matches!(self, Role::Client | Role::Loopback)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
