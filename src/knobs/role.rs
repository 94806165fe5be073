//! What a host does with its connections (server, client, loopback): the domain value check, apply, profiles and verify share.
//!
//! The command line parses it in `cli/` (which implements clap's `ValueEnum` for it); nothing here knows clap.

use std::fmt;
use std::str::FromStr;

/// What a host does with its connections; decides how many sockets and ports a connection costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    /// Every role, in the order help texts list them.
    pub const ALL: [Role; 3] = [Role::Server, Role::Client, Role::Loopback];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Server => "server",
            Role::Client => "client",
            Role::Loopback => "loopback",
        }
    }

    /// One line for help texts and the man pages.
    pub fn help(self) -> &'static str {
        match self {
            Role::Server => "Accepts connections: one socket per connection",
            Role::Client => "Opens connections (a load-generating host): one socket and one ephemeral port per connection",
            Role::Loopback => "Both ends on this host: two sockets per connection, and source addresses for the ports",
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

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role {s:?}: expected server, client or loopback"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
        assert!("servers"
            .parse::<Role>()
            .unwrap_err()
            .contains("expected server"));
    }
}
