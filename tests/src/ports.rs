//! Free TCP ports for the processes a test starts, found by binding
//! 127.0.0.1:0 and letting go. There is a small window in which another
//! process could take the port; tests accept that (a clash fails loudly at
//! start-up, it never corrupts a result).

use std::net::TcpListener;

/// Ports the RabbitMQ CLI tools use for their own Erlang distribution
/// connections; a node listening there breaks `rabbitmqctl`.
const RABBITMQ_CLI_PORTS: std::ops::RangeInclusive<u16> = 35672..=35682;

/// A currently free port on 127.0.0.1.
pub fn free_port() -> std::io::Result<u16> {
    loop {
        let port = TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port();
        if is_usable(port) {
            return Ok(port);
        }
    }
}

/// Whether a port the OS handed out is one we may give to a service.
fn is_usable(port: u16) -> bool {
    port != 0 && !RABBITMQ_CLI_PORTS.contains(&port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usable_ports_avoid_the_rabbitmq_cli_range() {
        for (port, usable) in [
            (0, false),
            (35671, true),
            (35672, false),
            (35677, false),
            (35682, false),
            (35683, true),
            (45000, true),
        ] {
            assert_eq!(is_usable(port), usable, "port {port}");
        }
    }

    #[test]
    fn free_port_can_be_bound() {
        let port = free_port().expect("a free port");
        assert!(TcpListener::bind(("127.0.0.1", port)).is_ok());
    }
}
