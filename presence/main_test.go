package presence

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// nats-server waits up to 30 s for the answer to a source
		// consumer's creation in a goroutine that its shutdown does not
		// stop (TestStalledSourceIsKicked leaves one behind).
		goleak.IgnoreTopFunction("github.com/nats-io/nats-server/v2/server.(*stream).trySetupSourceConsumer.func3"),
	)
}
