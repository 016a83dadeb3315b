// Package wsaccept holds what the broker's WebSocket endpoints (the native
// protocol and Rocket.Chat's realtime API) share when they accept a
// connection: small buffers for the hijacked connection, a socket under
// the library that sends a frame in one write and reads within a budget
// (so that a connection can be read only when it has whole messages, see
// Socket.Peek), and the configured origins as coder/websocket's origin
// patterns.
package wsaccept
