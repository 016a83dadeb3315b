package protocol

// Status is a user's presence status as every API shows it.
type Status string

// Canonical statuses. "Not offline" means online, away or busy.
const (
	StatusOnline  Status = "online"
	StatusAway    Status = "away"
	StatusBusy    Status = "busy"
	StatusOffline Status = "offline"
)

// Valid reports whether s is one of the four canonical statuses.
func (s Status) Valid() bool {
	switch s {
	case StatusOnline, StatusAway, StatusBusy, StatusOffline:
		return true
	}
	return false
}

// Online reports whether s counts as present (online, away or busy).
func (s Status) Online() bool {
	return s == StatusOnline || s == StatusAway || s == StatusBusy
}

// MaxStatusText is the longest status message accepted, in bytes.
const MaxStatusText = 256
