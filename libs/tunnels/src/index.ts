// Tunnels: the pieces tunnel-manager puts together on an edge and on a node's host. The edge
// forwarder picks a healthy path per connection; WireGuard links and SSH reverse tunnels are
// the paths it manages, each driven through the field's own tools (wireguard-go, wg, sshd, ssh).
export {};
