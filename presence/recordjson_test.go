package presence

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/presenced/presenced/protocol"
)

// The hand-written encodings decode to exactly what encoding/json's do.
func TestRecordJSON(t *testing.T) {
	at := time.Date(2026, 11, 23, 16, 0, 0, 123456789, time.UTC)
	east := time.FixedZone("east", 5*3600+1800)
	for _, r := range []sessionRecord{
		{User: "u", Session: "s", Status: protocol.StatusOnline},
		{User: "u", Session: "s", Node: "n1", Inst: "i", Status: protocol.StatusBusy, Text: `on a "call" <b>&</b> é ☎ ` + "\x01\u2028\xff",
			Device: "phone", Client: "web/1.2", Since: at, Expires: at.Add(5 * time.Second), Auto: true},
		{User: "u", Session: "s", Status: protocol.StatusAway, Since: at.In(east), Expires: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		got := r.appendJSON(nil)
		var back sessionRecord
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("%s: %v", got, err)
		}
		want, _ := json.Marshal(r)
		var ref sessionRecord
		if err := json.Unmarshal(want, &ref); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(back, ref) {
			t.Errorf("record\n got %s\nwant %s", got, want)
		}
	}
	for _, c := range []Change{
		{User: "u", Status: protocol.StatusOffline, Rev: 1},
		{User: "u", Status: protocol.StatusOnline, Text: "<hi>\n", Since: at, Rev: 1 << 62},
	} {
		got := c.appendJSON(nil)
		var back Change
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("%s: %v", got, err)
		}
		want, _ := json.Marshal(c)
		var ref Change
		if err := json.Unmarshal(want, &ref); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(back, ref) {
			t.Errorf("change\n got %s\nwant %s", got, want)
		}
	}
}

func BenchmarkRecordJSON(b *testing.B) {
	r := sessionRecord{User: "user-0001", Session: "crm", Status: protocol.StatusOnline, Text: "in a meeting",
		Since: time.Now(), Expires: time.Now().Add(time.Minute)}
	b.Run("append", func(b *testing.B) {
		buf := make([]byte, 0, 256)
		for b.Loop() {
			buf = r.appendJSON(buf[:0])
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		for b.Loop() {
			_, _ = json.Marshal(r)
		}
	})
}
