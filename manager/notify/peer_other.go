//go:build !unix

package notify

import "net"

// peerClosed cannot peek portably here; a lost connection is found by the
// write that fails, and the Dispatcher retries.
func peerClosed(net.Conn) bool { return false }
