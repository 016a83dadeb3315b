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

// decodeSessionRecord gives what encoding/json gives, for the records
// appendJSON writes (which it reads itself) and for anything else.
func TestDecodeSessionRecord(t *testing.T) {
	at := time.Date(2026, 11, 23, 16, 0, 0, 123456789, time.UTC)
	plain := []sessionRecord{
		{},
		{User: "u", Session: "s", Status: protocol.StatusOnline},
		{User: "ü", Session: "s", Node: "n1", Inst: "i", Status: protocol.StatusBusy, Text: "on a call é ☎",
			Device: "phone", Client: "web/1.2", Since: at, Expires: at.Add(5 * time.Second), Auto: true},
		{User: "u", Session: "s", Status: "gone", Since: at.In(time.FixedZone("east", 5*3600+1800))},
	}
	for _, r := range plain {
		b := r.appendJSON(nil)
		var got sessionRecord
		if !readSessionRecord(b, &got) {
			t.Errorf("%s: not read directly", b)
		}
		sameAsEncodingJSON(t, b)
	}
	for _, b := range []string{
		`{"user":"u","session":"s","status":"online","text":"a \"quoted\" \u00e9"}`,
		`{"user":"u","session":"s","status":"online","text":"\ud800"}`,
		"{\"user\":\"\xff\",\"status\":\"online\"}",
		"{\"user\":\"a\x01\",\"status\":\"online\"}",
		`{"session":"s","user":"u","status":"online"}`,
		`{"user":"u","user":"v","status":"online"}`,
		`{"User":"u","STATUS":"online"}`,
		`{"user":"u","status":"online","extra":[1,{"a":null}]}`,
		`{"user":null,"status":"online"}`,
		`{"user":"u", "status":"online"}`,
		` {"user":"u","status":"online"}`,
		`{"user":"u","status":"online"} `,
		`{"user":"u","status":"online"}x`,
		`{"user":"u","status":"online"}{}`,
		`{"user":"u","status":"online",}`,
		`{"user":"u","status":"online"`,
		`{"user":"u","status":1}`,
		`{"user":"u","auto":true}`,
		`{"user":"u","auto":false}`,
		`{"user":"u","auto":"true"}`,
		`{"user":"u","auto":truex}`,
		`{"user":"u","since":"2026-11-23T16:00:00Z"}`,
		`{"user":"u","since":"2026-11-23 16:00:00"}`,
		`{"user":"u","since":""}`,
		`{"user":"u","expires":"2026-13-01T00:00:00Z"}`,
		`{"user":"u","since":null}`,
		`{}`, `{`, `}`, ``, `[]`, `null`, `{"":""}`, `{"user"}`, `{"user":}`,
	} {
		sameAsEncodingJSON(t, []byte(b))
	}
}

func sameAsEncodingJSON(t *testing.T, b []byte) {
	t.Helper()
	var got, want sessionRecord
	errGot := decodeSessionRecord(b, &got)
	errWant := json.Unmarshal(b, &want)
	switch {
	case (errGot == nil) != (errWant == nil):
		t.Errorf("%q: error %v, encoding/json's %v", b, errGot, errWant)
	case errWant == nil && !reflect.DeepEqual(got, want):
		t.Errorf("%q:\n got %+v\nwant %+v", b, got, want)
	}
}

func FuzzDecodeSessionRecord(f *testing.F) {
	at := time.Date(2026, 11, 23, 16, 0, 0, 123456789, time.UTC)
	f.Add((&sessionRecord{User: "u", Session: "s", Node: "n", Inst: "i", Status: protocol.StatusAway, Text: "t",
		Device: "d", Client: "c", Since: at, Expires: at, Auto: true}).appendJSON(nil))
	f.Add([]byte(`{"user":"u","session":"s","status":"online","text":"\u00e9"}`))
	f.Add([]byte(`{"user":"u","user":"v"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		sameAsEncodingJSON(t, b)
	})
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
	enc := r.appendJSON(nil)
	b.Run("decode", func(b *testing.B) {
		for b.Loop() {
			var back sessionRecord
			_ = decodeSessionRecord(enc, &back)
		}
	})
	b.Run("decode encoding/json", func(b *testing.B) {
		for b.Loop() {
			var back sessionRecord
			_ = json.Unmarshal(enc, &back)
		}
	})
}
