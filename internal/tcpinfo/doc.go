// Package tcpinfo is a test helper: it reads the kernel's TCP_INFO of a
// connection (Linux), to count the segments a test's frames travel in.
package tcpinfo
