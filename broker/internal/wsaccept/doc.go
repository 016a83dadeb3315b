// Package wsaccept holds what the broker's WebSocket endpoints (the native
// protocol and Rocket.Chat's realtime API) share when they accept a
// connection: small buffers for the hijacked connection, and the
// configured origins as coder/websocket's origin patterns.
package wsaccept
